"use client";

/**
 * /worker: lend this tab to elytra's browser backend. The user pastes a worker token (or a
 * signed-in admin mints one), presses "Lend this tab"; the page runs a quick self-check of the
 * interpreter (lib/worker/selfcheck), then connects to /api/workers/ws and runs tasks in Web
 * Workers, one per slot: min(navigator.hardwareConcurrency, the cap). Data, never code: tasks
 * are expression plans the interpreter evaluates (no eval, no Function). A user token is refused
 * here with a message before anything connects. Tests read `window.elytraWorker.stats()` and
 * run the engine on given rows with `window.elytraWorker.run(steps, schema, chunk)`.
 */
import { useEffect, useRef, useState } from "react";

import { ErrorLine, PageTitle } from "@/components/ui";
import { TokenField } from "@/components/worker/TokenField";
import { WorkerStats } from "@/components/worker/WorkerStats";
import { idleStats, LentTab, tokenProblem, type LendStats } from "@/lib/worker/client";
import { runTask, type Step } from "@/lib/worker/engine";
import { selfCheck } from "@/lib/worker/selfcheck";

declare global {
  interface Window {
    elytraWorker?: {
      stats: () => LendStats & { busySecondsNow: number };
      /** The engine on given rows (base64 Arrow IPC) and steps, as a Web Worker runs a task. */
      run: (steps: Step[], schema: string, chunk: string) => string;
    };
  }
}

const IDLE: LendStats = idleStats();

const MAX_CAP = 4; // the server's default ELYTRA_BROWSER_MAX_CONCURRENCY

export default function WorkerPage() {
  const [token, setToken] = useState("");
  const [cap, setCap] = useState(MAX_CAP);
  const [pauseHidden, setPauseHidden] = useState(true);
  const [stats, setStats] = useState<LendStats>(IDLE);
  const [error, setError] = useState<string | null>(null);
  const [check, setCheck] = useState<string | null>(null);
  const [, tick] = useState(0);
  const tab = useRef<LentTab | null>(null);
  const lending = tab.current !== null;

  useEffect(() => {
    window.elytraWorker = {
      stats: () => ({ ...(tab.current?.stats ?? IDLE), busySecondsNow: tab.current?.busySeconds() ?? 0 }),
      run: (steps, schema, chunk) => {
        const bytes = Uint8Array.from(atob(chunk), (c) => c.charCodeAt(0));
        const out = runTask({ steps, schema }, bytes).bytes;
        let text = "";
        for (let i = 0; i < out.length; i += 0x8000) text += String.fromCharCode(...out.subarray(i, i + 0x8000));
        return btoa(text);
      },
    };
    const onVisibility = () => tab.current?.visibility(document.hidden);
    document.addEventListener("visibilitychange", onVisibility);
    const timer = setInterval(() => tick((n) => n + 1), 1000); // rows/s moves while busy
    return () => {
      document.removeEventListener("visibilitychange", onVisibility);
      clearInterval(timer);
      tab.current?.stop();
      tab.current = null;
      delete window.elytraWorker;
    };
  }, []);

  function lend() {
    setError(null);
    const problem = tokenProblem(token);
    if (problem) {
      setStats({ ...IDLE, state: "refused" });
      setError(problem);
      return;
    }
    setStats({ ...IDLE, state: "checking" });
    // Let the "checking" state paint before the (synchronous) check runs.
    setTimeout(() => {
      const result = selfCheck();
      setCheck(result.message);
      if (!result.ok) {
        setStats({ ...IDLE, state: "refused" });
        setError(`This browser failed the interpreter's self-check, so it is not lent: ${result.message}`);
        return;
      }
      const t = new LentTab({ token, cap, pauseWhenHidden: pauseHidden, onChange: setStats });
      tab.current = t;
      t.start();
      t.visibility(document.hidden);
    }, 0);
  }

  function stop() {
    tab.current?.stop();
    tab.current = null;
  }

  return (
    <>
      <PageTitle title="Worker" />
      <p className="muted">
        Lend this tab to the platform&apos;s pipelines: it runs the pure-data part of jobs (scans of one chunk, filters,
        computed columns, partial aggregates, top-k) in Web Workers and sends the rows back. Results are checked, and a
        fraction is re-run on a trusted worker; nothing the server sends is run as code.
      </p>
      <TokenField value={token} onChange={setToken} disabled={lending} />
      <p>
        <label>
          Web Workers at most{" "}
          <input
            type="number"
            min={1}
            max={16}
            value={cap}
            disabled={lending}
            onChange={(e) => setCap(Math.max(1, Math.min(16, Number(e.target.value) || 1)))}
            style={{ width: "4em" }}
          />
        </label>{" "}
        <span className="muted">
          (this browser has {typeof navigator !== "undefined" ? navigator.hardwareConcurrency || 1 : 1} cores; the server
          caps it too)
        </span>
      </p>
      <p>
        <label>
          <input
            type="checkbox"
            checked={pauseHidden}
            onChange={(e) => {
              setPauseHidden(e.target.checked);
              tab.current?.setPauseWhenHidden(e.target.checked);
            }}
          />{" "}
          Pause when this tab is hidden
        </label>
      </p>
      <p>
        {lending ? (
          <button type="button" onClick={stop}>
            Stop lending
          </button>
        ) : (
          <button type="button" className="primary" onClick={lend} disabled={!token}>
            Lend this tab
          </button>
        )}
      </p>
      <ErrorLine error={error} testId="worker-error" />
      {check ? (
        <p className="muted" data-testid="worker-selfcheck">
          Self-check: {check}
        </p>
      ) : null}
      {stats.lastError && stats.state !== "connected" ? <p className="muted">{stats.lastError}</p> : null}
      <WorkerStats stats={stats} busySeconds={tab.current?.busySeconds() ?? stats.busySeconds} />
    </>
  );
}
