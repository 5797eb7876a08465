"""The ``platform`` command: ``platform up`` runs the gateway, plugins add ``platform <name>``.

Bad input never shows a traceback: it prints one line and exits non-zero (2 for bad
settings, options or secret, 1 when the platform cannot start or was stopped by force; the
other codes by error kind, as ``platform_core.cli`` maps them). ``platform login`` keeps a
token for a gateway URL that every CLI then uses (``platform_core.cli.resolve_token``).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from platform_core import BadInputError, PlatformError, Plugin, discover_plugins
from platform_core.cli import expected_errors, fail, new_app, version_option, warn
from platform_core.mallocarenas import bound_arenas_when_serving

from .demo import register as register_demo
from .members_cli import app as members_app
from .status_cli import register as register_status
from .tokens_cli import register as register_tokens
from .users_cli import app as users_app
from .versions import platform_versions

if TYPE_CHECKING:
    from platform_core import PlatformSettings

    from .raynode import RayNode

__all__ = ["build_cli", "main"]

log = logging.getLogger(__name__)

_BUILTIN_COMMANDS = frozenset(
    {"up", "token", "login", "logout", "demo-data", "user", "status", "members"}
)


def _configure_logging(level: str) -> None:
    """Configure logging once, for the whole process (the service kit's JSON lines, with
    credentials redacted); handlers an embedding program or test runner installed are kept."""
    from platform_core.service import configure_service_logging

    configure_service_logging(level)


MAX_TOKEN_TTL_SECONDS = 7 * 24 * 3600
"""``platform_core.auth.MAX_TOKEN_TTL_SECONDS`` (a test keeps them equal): ``--ttl``'s bound,
without importing auth (PyJWT) for ``--help``."""


def build_cli(plugins: list[Plugin] | None = None) -> typer.Typer:
    """The ``platform`` Typer app with each plugin's CLI as ``platform <name>``.

    ``plugins`` defaults to the installed ones; if they fail to load, the error is printed
    and the built-in commands still work (``up`` then refuses to start).
    """
    load_error: str | None = None
    if plugins is None:
        try:
            plugins = discover_plugins()
        except PlatformError as exc:
            load_error = str(exc)
            warn(f"{load_error} (its commands are missing; fix or uninstall that package)")
            plugins = []
    cli = new_app(
        name="platform",
        help="The data platform: run it with `platform up`, then open /docs.",
        no_args_is_help=True,
    )
    cli.callback()(_root)
    _add_up(cli, plugins, load_error)
    cli.add_typer(_token_app())
    cli.command("login")(_login)
    cli.command()(logout)
    register_status(cli)
    register_demo(cli)
    cli.add_typer(users_app, name="user")
    cli.add_typer(members_app, name="members")
    _add_plugin_clis(cli, plugins)
    return cli


def _root(
    version: Annotated[bool, version_option(versions=platform_versions)] = False,
) -> None:
    """The data platform: storage, SQL, pipelines and a live database behind one gateway."""


def _add_up(cli: typer.Typer, plugins: list[Plugin], load_error: str | None) -> None:
    """``platform up``: its options here, the start in :func:`_start`."""

    @cli.command()
    def up(
        host: Annotated[
            str | None,
            typer.Option(help="Address to listen on (default: PLATFORM_HOST or 127.0.0.1)."),
        ] = None,
        port: Annotated[
            int | None,
            typer.Option(
                min=0, max=65535, help="Port to listen on; 0 picks a free one (default: 8080)."
            ),
        ] = None,
        home: Annotated[
            Path | None,
            typer.Option(help="Data directory (default: PLATFORM_HOME or ./.platform)."),
        ] = None,
        log_level: Annotated[
            str | None, typer.Option(help="debug, info, warning or error (default: info).")
        ] = None,
        join: Annotated[
            str | None,
            typer.Option(
                help="HOST:PORT of a running platform to join: this one becomes its peer (its "
                "lake node joins the cluster, its Elkyn joins the election of the primary, its "
                "workers take the cluster's tasks). Same PLATFORM_SECRET on both."
            ),
        ] = None,
        ray_address: Annotated[
            str | None,
            typer.Option(
                help="A running Ray cluster (auto, HOST:PORT or ray://HOST:PORT): Elytra runs "
                "its tasks there (ELYTRA_BACKEND=ray unless set)."
            ),
        ] = None,
        ray: Annotated[
            bool,
            typer.Option(
                "--ray",
                help="Start a Ray node beside the gateway (a head; with --join a worker node of "
                "the joined platform's head), stopped with the platform; Elytra runs its tasks "
                "there. Its files live under <home>/ray.",
            ),
        ] = False,
    ) -> None:
        """Start the gateway with every installed plugin; Ctrl-C stops it (twice: by force)."""
        if load_error is not None:
            fail(f"cannot start: {load_error}", 1)
        if ray and ray_address is not None:
            from .rayup import USAGE_BOTH

            fail(USAGE_BOTH, 2)
        given: dict[str, Any] = {"host": host, "port": port, "join": join}
        if log_level is not None:
            given["log_level"] = log_level.lower()
        if home is not None:
            given["home"] = home.expanduser().resolve()
        settings = _up_settings({k: v for k, v in given.items() if v is not None})
        _export_for_plugins(settings, home_given=home is not None, ray_address=ray_address)
        _start(settings, plugins, with_ray=ray)


def _up_settings(given: dict[str, Any]) -> PlatformSettings:
    """The platform's settings with ``up``'s options over the environment; bad ones exit 2."""
    from platform_core import PlatformSettings, load_settings  # pydantic-settings: when run

    try:
        return load_settings(PlatformSettings, **given)
    except BadInputError as exc:
        fail(str(exc), 2)


def _export_for_plugins(
    settings: PlatformSettings, *, home_given: bool, ray_address: str | None
) -> None:
    """Plugins read their own settings from the environment; they must see ``up``'s options."""
    if home_given:
        os.environ["PLATFORM_HOME"] = str(settings.home)
    if settings.join:
        # Elkyn joins the election of that platform's cluster (elkyn.membership): no fixed
        # ELKYN_REPLICA_OF, the elected primary is followed and written to.
        os.environ["PLATFORM_JOIN"] = settings.join
    if ray_address is not None:
        os.environ["ELYTRA_RAY_ADDRESS"] = ray_address
        os.environ.setdefault("ELYTRA_BACKEND", "ray")


def _start(settings: PlatformSettings, plugins: list[Plugin], *, with_ray: bool = False) -> None:
    """Check the home, secret and TLS, bind, build the app and serve it until stopped
    (``with_ray``: beside its own Ray node, stopped with it)."""
    from platform_core import auth
    from platform_core.service import StartError, keep_alive_seconds
    from platform_core.tls import server_tls

    from .serve import bind

    try:
        Path(settings.home).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"cannot create the data directory {settings.home}: {exc}", 2)
    try:
        auth.load_secret(settings)  # made once if missing; create_app reads it again
        auth.signer(settings)  # the previous secrets too: a short one fails here
        tls = server_tls(settings)  # certificate and key readable and a pair, or one line
    except PlatformError as exc:
        fail(str(exc), 2)
    try:
        keep_alive_seconds()  # a bad PLATFORM_KEEP_ALIVE_SECONDS: one line, before the bind
        sock = bind(settings.host, settings.port)
    except StartError as exc:
        fail(exc.message, 1)  # one line, before any log line
    _configure_logging(settings.log_level)
    if settings.port == 0:
        # --port 0: plugins must see the bound port (the lake node gossips its address).
        settings = settings.model_copy(update={"port": sock.getsockname()[1]})
    ray_node = _start_ray(settings) if with_ray else None
    try:
        _serve(settings, plugins, sock, tls, ray_node)
    finally:
        if ray_node is not None:
            ray_node.stop()


def _start_ray(settings: PlatformSettings) -> RayNode:
    """The platform's Ray node (:mod:`.rayup`); a failure to start it is one line, exit 1."""
    from .rayup import start_ray

    try:
        return start_ray(settings)
    except PlatformError as exc:
        fail(str(exc), 1)


def _serve(
    settings: PlatformSettings,
    plugins: list[Plugin],
    sock: Any,
    tls: Any,
    ray_node: RayNode | None,
) -> None:
    """Build the app and serve it on ``sock`` until stopped; failures are one line."""
    from platform_core import cap_memory
    from platform_core.service import StartError

    from .app import create_app  # FastAPI: only `up` needs it
    from .serve import Outcome, serve, url_of

    try:
        app = create_app(settings, plugins)
    except BadInputError as exc:
        fail(str(exc), 2)
    except PlatformError as exc:
        fail(f"cannot start: {exc}", 1)
    app.state.ray_node = ray_node
    capped = cap_memory(settings.memory_headroom)  # a query errors, the process lives
    if capped is not None:
        logging.getLogger("platform").info("address space capped at %d MiB", capped >> 20)
    url = url_of(settings.host, sock.getsockname()[1], tls=tls is not None)
    try:
        ray = None if ray_node is None else ray_node.address
        outcome = serve(app, sock, url, settings.log_level, Path(settings.home), tls, ray=ray)
    except StartError as exc:  # a plugin failed to start: its reason is the last line
        fail(exc.message, 1)
    if outcome is Outcome.FAILED:
        fail("the platform did not start (the log above says why)", 1)
    if outcome is Outcome.FORCED:
        fail("stopped by force: plugins still stopping were interrupted", 1)


def _token_app() -> typer.Typer:
    """``platform token`` (print a token) with ``revoke`` and ``workers`` under it."""
    token_app = new_app(
        name="token",
        help="Print a token signed with the platform secret; `revoke` and `workers` manage "
        "the tokens a running platform issued.",
        invoke_without_command=True,
        no_args_is_help=False,
    )
    token_app.callback()(_token)
    register_tokens(token_app)
    return token_app


def _token(
    ctx: typer.Context,
    sub: Annotated[str, typer.Option(help="Subject (user id) of the token.")] = "admin",
    admin: Annotated[bool, typer.Option("--admin", help="Give the token admin rights.")] = False,
    worker: Annotated[
        bool,
        typer.Option(
            "--worker",
            help="A worker token (elytra's browser workers; refused on every other route).",
        ),
    ] = False,
    ttl: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=MAX_TOKEN_TTL_SECONDS,
            help="Lifetime in seconds, at most 7 days (default: PLATFORM_TOKEN_TTL_SECONDS).",
        ),
    ] = None,
    gen: Annotated[
        int, typer.Option(min=0, help="Token generation (after a revocation of --sub).")
    ] = 0,
    home: Annotated[
        Path | None, typer.Option(help="Data directory whose secret signs the token.")
    ] = None,
) -> None:
    """Print a token signed with the platform secret (for scripts: `--token $(platform token)`).

    The secret must exist already (`PLATFORM_SECRET`, or made by `platform up` under the
    home): a token signed with a new secret would be accepted by nobody. A token minted
    here has generation --gen (0): once its subject's tokens were revoked, the platform
    refuses it until minted with the current generation (`revoke` prints it).
    """
    if ctx.invoked_subcommand is not None:
        return
    from platform_core import PlatformSettings, auth, load_settings

    try:
        options: dict[str, Any] = {"home": home} if home is not None else {}
        settings = load_settings(PlatformSettings, **options)
        if worker and admin:
            fail("a worker token has no admin rights: give --worker or --admin", 2)
        token_signer = auth.signer(settings, create=False)
        if worker:
            value = token_signer.worker_token(sub, ttl_seconds=ttl or 3600, gen=gen)
        else:
            ttl_seconds = ttl if ttl is not None else settings.token_ttl_seconds
            value = token_signer.issue(sub, admin=admin, ttl_seconds=ttl_seconds, gen=gen)
    except PlatformError as exc:
        fail(str(exc), 2)
    typer.echo(value)


def _login(
    url: Annotated[
        str | None,
        typer.Option(help="The gateway (default: the one `platform up` runs, else :8080)."),
    ] = None,
    user: Annotated[
        str | None, typer.Option(help="User name (none: dev-mode login on this machine).")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """Log in to a gateway and keep its token for every CLI (`lake`, `elytra`, ...).

    With --user the password is asked for (or read from stdin); without, the gateway
    must be in dev mode (no admin password, and this machine). The token is kept in the
    user's config directory, readable by this user only, until `platform logout`.
    """
    from platform_core.cli import default_url, login, normalize_url, save_token

    with expected_errors():
        target = normalize_url(url) if url else default_url()
    password: str | None = None
    if user is not None:
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = typer.prompt(f"password for {user} at {target}", hide_input=True)
    elif password_stdin:
        fail("--password-stdin needs --user (dev-mode login takes no password)", 2)
    with expected_errors(OSError):
        token_value = login(target, user, password)
        where = save_token(target, token_value)
    typer.echo(f"logged in to {target} as {user or 'admin (dev mode)'}; token kept in {where}")


def logout(
    url: Annotated[
        str | None,
        typer.Option(help="The gateway (default: the one `platform up` runs, else :8080)."),
    ] = None,
) -> None:
    """Sign out of a gateway: its token is revoked there (on every platform of its
    cluster) and forgotten here."""
    from platform_core.cli import default_url, forget_token, normalize_url, tokens_file

    from .tokens_cli import sign_out

    with expected_errors(OSError):
        target = normalize_url(url) if url else default_url()
        sign_out(target)
        had = forget_token(target)
    typer.echo(
        f"logged out of {target}" if had else f"no token kept for {target} in {tokens_file()}"
    )


def _add_plugin_clis(cli: typer.Typer, plugins: list[Plugin]) -> None:
    """Each plugin's Typer app as ``platform <name>`` (not one named like a built-in)."""
    for plugin in plugins:
        if plugin.cli is None:
            continue
        if plugin.name in _BUILTIN_COMMANDS:
            warn(f"plugin {plugin.name!r} is named like a built-in command; its CLI is skipped")
        elif not isinstance(plugin.cli, typer.Typer):
            warn(f"plugin {plugin.name!r}: its cli is {type(plugin.cli).__name__}, not a Typer")
        elif plugin.description:
            cli.add_typer(plugin.cli, name=plugin.name, help=plugin.description)
        else:  # keep the help the plugin's Typer app gives itself
            cli.add_typer(plugin.cli, name=plugin.name)


def main() -> None:
    """Entry point of the ``platform`` console script."""
    bound_arenas_when_serving(["up"])
    build_cli()(prog_name="platform")
