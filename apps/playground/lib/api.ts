/**
 * The gateway's REST API with the session's token. Errors arrive as the platform's error body
 * ({error, type, details}) and are thrown as ApiError, so a page shows the server's own words
 * where the action happened. A 401 ends the session (the token expired or was refused).
 */
"use client";

import { signOut, token } from "./session";

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly type: string = "error",
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export interface ApiInit extends Omit<RequestInit, "body"> {
  /** A JSON body (objects are encoded); a Blob, ArrayBuffer or string is sent as is. */
  body?: unknown;
  /** Send without the session's token (the sign-in call). */
  anonymous?: boolean;
}

function encode(init: ApiInit, headers: Headers): BodyInit | undefined {
  const b = init.body;
  if (b === undefined) return undefined;
  if (b instanceof Blob || b instanceof ArrayBuffer || typeof b === "string") return b as BodyInit;
  headers.set("content-type", "application/json");
  return JSON.stringify(b);
}

/** fetch() against the gateway; resolves to the Response when it is 2xx, else throws ApiError. */
export async function apiResponse(path: string, init: ApiInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  const t = init.anonymous ? null : token();
  if (t) headers.set("authorization", `Bearer ${t}`);
  const body = encode(init, headers);
  let res: Response;
  try {
    res = await fetch(path, { ...init, headers, body });
  } catch (e) {
    if ((e as Error).name === "AbortError") throw e;
    throw new ApiError(`the gateway did not answer (${(e as Error).message}); is platform up running?`, 0, "unavailable");
  }
  if (res.ok) return res;
  let message = `${res.status} ${res.statusText}`;
  let type = "error";
  let details: Record<string, unknown> = {};
  try {
    const j = await res.json();
    if (typeof j?.error === "string") message = j.error;
    if (typeof j?.type === "string") type = j.type;
    if (j?.details && typeof j.details === "object") details = j.details;
  } catch {
    /* not JSON: keep the status line */
  }
  if (res.status === 401 && !init.anonymous) signOut();
  throw new ApiError(message, res.status, type, details);
}

/** A JSON call: the parsed body of a 2xx answer. */
export async function api<T = unknown>(path: string, init: ApiInit = {}): Promise<T> {
  const res = await apiResponse(path, init);
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

/** A human line for anything thrown by api() or the browser. */
export function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}
