/**
 * A finished job's rows, one page at a time: GET /api/jobs/{id}/result?format=arrow with
 * offset and limit (the platform reads only that page from the stored result), shown in the
 * virtualised grid, with Previous / Next to move through a result of any size.
 */
"use client";

import { useEffect, useState } from "react";

import { DataGrid } from "@/components/DataGrid";
import { Busy, ErrorLine } from "@/components/ui";
import { apiResponse, errorText } from "@/lib/api";
import { frameFromResponse, type Frame } from "@/lib/arrow";
import { count } from "@/lib/format";

export const RESULT_ROWS = 10_000;

export function JobResult({ id, rows }: { id: string; rows?: number }) {
  const [offset, setOffset] = useState(0);
  const [frame, setFrame] = useState<Frame | null>(null);
  const [total, setTotal] = useState<number | null>(rows ?? null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => setOffset(0), [id]);
  useEffect(() => {
    let gone = false;
    setFrame(null);
    setError(null);
    const path = `/api/jobs/${encodeURIComponent(id)}/result?format=arrow&offset=${offset}&limit=${RESULT_ROWS}`;
    apiResponse(path)
      .then((r) => {
        const header = r.headers.get("x-total-rows");
        if (header !== null && !gone) setTotal(Number(header));
        return frameFromResponse(r);
      })
      .then((f) => !gone && setFrame(f))
      .catch((e) => !gone && setError(errorText(e)));
    return () => {
      gone = true;
    };
  }, [id, offset]);
  if (error) return <ErrorLine error={error} testId="result-error" />;
  if (!frame) return <Busy label="Loading the result" />;
  const all = total ?? frame.rowCount;
  const last = offset + frame.rowCount;
  const paged = all > frame.rowCount;
  return (
    <section aria-label="Result" data-testid="job-result">
      <p className="muted" data-testid="result-cap">
        {paged
          ? `Rows ${count(offset + 1)}–${count(last)} of ${count(all)} (pages of ${count(RESULT_ROWS)}; the whole result streams as Arrow or CSV from /api/jobs/${id}/result).`
          : `All ${count(all)} rows.`}
      </p>
      {paged ? (
        <p data-testid="result-pager">
          <button
            type="button"
            disabled={offset === 0}
            onClick={() => setOffset(Math.max(0, offset - RESULT_ROWS))}
          >
            Previous
          </button>{" "}
          <button type="button" disabled={last >= all} onClick={() => setOffset(last)}>
            Next
          </button>
        </p>
      ) : null}
      <DataGrid frame={frame} label="Job result" height={360} />
    </section>
  );
}
