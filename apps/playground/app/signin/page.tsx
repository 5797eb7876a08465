"use client";

/**
 * Sign in. In dev mode (no admin password set, a browser on the gateway's machine) one click
 * gives an admin session; otherwise a user name and password (`platform user add`).
 */
import { useRouter, useSearchParams } from "next/navigation";
import { Suspense, useEffect, useState, type FormEvent } from "react";

import { ErrorLine } from "@/components/ui";
import { api, errorText } from "@/lib/api";
import { signIn } from "@/lib/session";

interface LoginMode {
  dev_mode: boolean;
}
interface TokenResponse {
  token: string;
  expires_in: number;
}

/**
 * Where to go after signing in: a page of this site, never another one. The browser's own URL
 * parser decides (it reads `/\\evil` and `/<tab>/evil` as `//evil`, another host), and only
 * the path, query and fragment of a same-origin answer are kept.
 */
function safeNext(next: string | null): string {
  if (!next || !next.startsWith("/")) return "/";
  let url: URL;
  try {
    url = new URL(next, window.location.origin);
  } catch {
    return "/";
  }
  const path = url.pathname;
  // `/.//evil` parses to the path `//evil`, which the router would read as another host.
  if (url.origin !== window.location.origin || path.startsWith("//") || path.startsWith("/signin")) return "/";
  return path + url.search + url.hash;
}

function SignInForm() {
  const router = useRouter();
  const params = useSearchParams();
  const [mode, setMode] = useState<LoginMode | null>(null);
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    api<LoginMode>("/api/login", { anonymous: true })
      .then(setMode)
      .catch((e) => {
        setMode({ dev_mode: false });
        setError(errorText(e));
      });
  }, []);

  async function login(body: Record<string, string>) {
    setBusy(true);
    setError(null);
    try {
      const t = await api<TokenResponse>("/api/login", { method: "POST", body, anonymous: true });
      signIn(t.token, t.expires_in);
      router.replace(safeNext(params.get("next")));
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  }

  function submit(ev: FormEvent) {
    ev.preventDefault();
    void login({ username, password });
  }

  return (
    <div className="panel signin">
      <h1>Sign in</h1>
      {mode?.dev_mode ? (
        <div className="row" style={{ margin: "1rem 0" }}>
          <button type="button" className="primary grow" disabled={busy} onClick={() => void login({})}>
            Sign in as admin (dev mode)
          </button>
        </div>
      ) : null}
      {mode?.dev_mode ? (
        <p className="muted">Dev mode: no admin password is set and this browser is on the gateway&apos;s machine.</p>
      ) : null}
      <form onSubmit={submit} className="row" style={{ flexDirection: "column", alignItems: "stretch", gap: "0.6rem" }}>
        <label>
          User name
          <input name="username" autoComplete="username" value={username} onChange={(e) => setUsername(e.target.value)} required />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            autoComplete="current-password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            required
          />
        </label>
        <button type="submit" className={mode?.dev_mode ? "" : "primary"} disabled={busy}>
          Sign in with password
        </button>
      </form>
      <ErrorLine error={error} />
    </div>
  );
}

export default function SignInPage() {
  return (
    <Suspense>
      <SignInForm />
    </Suspense>
  );
}
