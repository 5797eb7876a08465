/**
 * A finished job's rows: GET /api/jobs/{id}/result as an Arrow IPC stream, shown in the
 * virtualised grid. At most RESULT_ROWS rows are fetched (the page says so when there are more).
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
  const [frame, setFrame] = useState<Frame | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let gone = false;
    setFrame(null);
    setError(null);
    apiResponse(`/api/jobs/${encodeURIComponent(id)}/result?format=arrow&limit=${RESULT_ROWS}`)
      .then(frameFromResponse)
      .then((f) => !gone && setFrame(f))
      .catch((e) => !gone && setError(errorText(e)));
    return () => {
      gone = true;
    };
  }, [id]);
  if (error) return <ErrorLine error={error} testId="result-error" />;
  if (!frame) return <Busy label="Loading the result" />;
  const total = rows ?? frame.rowCount;
  return (
    <section aria-label="Result" data-testid="job-result">
      <p className="muted" data-testid="result-cap">
        {total > frame.rowCount
          ? `Showing the first ${count(frame.rowCount)} of ${count(total)} rows (the page fetches at most ${count(RESULT_ROWS)}; write the result to a dataset or fetch it as Arrow/CSV from /api/jobs/${id}/result for all of it).`
          : `All ${count(total)} rows (the page shows at most ${count(RESULT_ROWS)}).`}
      </p>
      <DataGrid frame={frame} label="Job result" height={360} />
    </section>
  );
}
