"use client";

/**
 * Users (admins only): this platform's users, their roles changed in place, passwords, removal,
 * revoking a user's tokens, and the worker tokens minted on any platform (revocable one by one
 * or all at once). Every action is revoked on every platform within seconds and audited.
 */
import { FormEvent, useCallback, useEffect, useState } from "react";

import { Busy, ErrorLine, PageTitle } from "@/components/ui";
import { api, errorText } from "@/lib/api";
import { useSession } from "@/lib/session";

interface User {
  name: string;
  admin: boolean;
  created: string;
}

interface WorkerToken {
  id: string;
  sub: string;
  exp: number;
  revoked: boolean;
}

export default function UsersPage() {
  const s = useSession();
  const [users, setUsers] = useState<User[] | null>(null);
  const [workers, setWorkers] = useState<WorkerToken[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const [admin, setAdmin] = useState(false);

  const load = useCallback(async () => {
    try {
      setUsers(await api<User[]>("/api/users"));
      setWorkers(await api<WorkerToken[]>("/api/tokens/workers"));
    } catch (e) {
      setError(errorText(e));
    }
  }, []);

  useEffect(() => {
    if (s?.admin) void load();
  }, [s, load]);

  const act = async (what: string, call: () => Promise<unknown>) => {
    setError(null);
    try {
      await call();
      setNote(what);
      await load();
    } catch (e) {
      setError(errorText(e));
    }
  };

  if (s && !s.admin) return <ErrorLine error="The Users page is for admins." testId="users-refused" />;

  const add = (e: FormEvent) => {
    e.preventDefault();
    void act(`added ${name}`, () => api("/api/users", { method: "POST", body: { name, password, admin } }));
    setName("");
    setPassword("");
  };

  return (
    <>
      <PageTitle title="Users" />
      <ErrorLine error={error} testId="users-error" />
      {note && <p data-testid="users-note">{note}</p>}
      {users === null ? (
        <Busy />
      ) : (
        <table data-testid="users-table">
          <thead>
            <tr>
              <th>name</th>
              <th>admin</th>
              <th>created</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {users.map((u) => (
              <tr key={u.name} data-testid={`user-${u.name}`}>
                <td>{u.name}</td>
                <td>
                  <input
                    type="checkbox"
                    aria-label={`${u.name} is an admin`}
                    checked={u.admin}
                    onChange={(e) =>
                      void act(`${u.name} is ${e.target.checked ? "an admin" : "not an admin"}`, () =>
                        api(`/api/users/${encodeURIComponent(u.name)}`, { method: "PATCH", body: { admin: e.target.checked } }),
                      )
                    }
                  />
                </td>
                <td>{u.created}</td>
                <td>
                  <button
                    type="button"
                    onClick={() =>
                      void act(`revoked the tokens of ${u.name}`, () =>
                        api("/api/tokens/revoke", { method: "POST", body: { user: u.name } }),
                      )
                    }
                  >
                    Revoke tokens
                  </button>{" "}
                  <button
                    type="button"
                    onClick={() =>
                      void act(`removed ${u.name}`, () => api(`/api/users/${encodeURIComponent(u.name)}`, { method: "DELETE" }))
                    }
                  >
                    Remove
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form onSubmit={add} aria-label="Add a user">
        <input aria-label="user name" placeholder="name" value={name} onChange={(e) => setName(e.target.value)} />
        <input
          aria-label="password"
          type="password"
          placeholder="password (8+ characters)"
          value={password}
          onChange={(e) => setPassword(e.target.value)}
        />
        <label>
          <input type="checkbox" checked={admin} onChange={(e) => setAdmin(e.target.checked)} /> admin
        </label>
        <button type="submit">Add user</button>
      </form>
      <h2>Worker tokens</h2>
      <button
        type="button"
        onClick={() => void act("revoked every worker token", () => api("/api/tokens/revoke", { method: "POST", body: { workers: true } }))}
      >
        Revoke all worker tokens
      </button>
      <table data-testid="workers-table">
        <thead>
          <tr>
            <th>id</th>
            <th>worker</th>
            <th>expires</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {workers.map((w) => (
            <tr key={w.id}>
              <td>{w.id}</td>
              <td>{w.sub}</td>
              <td>{new Date(w.exp * 1000).toISOString()}</td>
              <td>
                {w.revoked ? (
                  "revoked"
                ) : (
                  <button
                    type="button"
                    onClick={() => void act(`revoked ${w.id}`, () => api("/api/tokens/revoke", { method: "POST", body: { id: w.id } }))}
                  >
                    Revoke
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
