/** The worker token: pasted, or minted by a signed-in admin (POST /api/workers/tokens). */
"use client";

import { useState } from "react";

import { ErrorLine } from "@/components/ui";
import { api, errorText } from "@/lib/api";
import { useSession } from "@/lib/session";

export function TokenField({ value, onChange, disabled }: { value: string; onChange: (t: string) => void; disabled: boolean }) {
  const session = useSession();
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function mint() {
    setError(null);
    setBusy(true);
    try {
      const sub = `tab-${session?.user ?? "admin"}`;
      const r = await api<{ token: string }>("/api/workers/tokens", { method: "POST", body: { sub, ttl_seconds: 86_400 } });
      onChange(r.token);
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <div>
      <label htmlFor="worker-token">Worker token</label>
      <textarea
        id="worker-token"
        rows={3}
        spellCheck={false}
        autoComplete="off"
        style={{ width: "100%", fontFamily: "monospace" }}
        value={value}
        disabled={disabled}
        placeholder="Paste a worker token (platform token --worker)"
        onChange={(e) => onChange(e.target.value.trim())}
      />
      {session?.admin ? (
        <p>
          <button type="button" onClick={mint} disabled={disabled || busy}>
            Mint a worker token (24 h)
          </button>
        </p>
      ) : null}
      <ErrorLine error={error} testId="worker-mint-error" />
    </div>
  );
}
