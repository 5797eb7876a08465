/** Small building blocks every page uses: an error line, an empty state, a busy marker. */
"use client";

import type { ReactNode } from "react";

/** The API's error where the action happened; role=alert so screen readers hear it. */
export function ErrorLine({ error, testId }: { error: string | null | undefined; testId?: string }) {
  if (!error) return null;
  return (
    <p className="error" role="alert" data-testid={testId ?? "error"}>
      {error}
    </p>
  );
}

/** What to do next when there is nothing to show. */
export function Empty({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="empty" data-testid="empty">
      <strong>{title}</strong>
      {children ? <div>{children}</div> : null}
    </div>
  );
}

export function Busy({ label = "Loading" }: { label?: string }) {
  return (
    <span className="busy" role="status" aria-live="polite">
      {label}…
    </span>
  );
}

export function PageTitle({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <header className="page-title">
      <h1>{title}</h1>
      {children ? <div className="actions">{children}</div> : null}
    </header>
  );
}
