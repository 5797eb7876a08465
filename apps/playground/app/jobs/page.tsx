"use client";

/**
 * Jobs: the user's jobs (an admin's: everyone's), newest first, with state, duration, tasks,
 * rows and spill.
 *
 * Live without a refresh button: the list is fetched again every POLL_MS while any listed job
 * is unfinished, every IDLE_MS otherwise (a job submitted elsewhere still appears), and not
 * while the tab is hidden: one small request, bounded by ?limit. Subscribing to Elkyn instead does
 * not fit this page: a non-admin may read only /jobs/<own id>, never /jobs, so new jobs could
 * not be seen; and one EventSource per unfinished job would spend the browser's six
 * connections per origin (HTTP/1.1), starving the page's other requests. A job's own page
 * subscribes to its record.
 */

import Link from "next/link";
import { useEffect, useState } from "react";

import { StateBadge } from "@/components/jobs/JobProgress";
import styles from "@/components/jobs/jobs.module.css";
import { duration, isFinal, type JobRecord } from "@/components/jobs/record";
import { Busy, Empty, ErrorLine, PageTitle } from "@/components/ui";
import { api, errorText } from "@/lib/api";
import { bytes, count, seconds, when } from "@/lib/format";
import { useSession } from "@/lib/session";

const POLL_MS = 2000;
const IDLE_MS = 10_000;

export default function Page() {
  const session = useSession();
  const [jobs, setJobs] = useState<JobRecord[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);

  useEffect(() => {
    let gone = false;
    api<JobRecord[]>("/api/jobs?limit=200")
      .then((j) => {
        if (gone) return;
        setJobs(j);
        setError(null);
      })
      .catch((e) => !gone && setError(errorText(e)));
    return () => {
      gone = true;
    };
  }, [tick]);

  const unfinished = jobs?.some((j) => !isFinal(j.state)) ?? false;
  useEffect(() => {
    const t = window.setInterval(
      () => document.visibilityState === "visible" && setTick((n) => n + 1),
      unfinished ? POLL_MS : IDLE_MS,
    );
    return () => window.clearInterval(t);
  }, [unfinished]);

  return (
    <>
      <PageTitle title="Jobs">
        <Link href="/pipelines/">Build a pipeline</Link>
      </PageTitle>
      <ErrorLine error={error} />
      {jobs === null && !error ? <Busy label="Loading jobs" /> : null}
      {jobs !== null && !jobs.length ? (
        <Empty title="No jobs yet">
          Build one on the <Link href="/pipelines/">Pipelines</Link> page and submit it; it is listed here as it runs.
        </Empty>
      ) : null}
      {jobs?.length ? (
        <div className={`panel ${styles.tableWrap}`}>
          <table className="data" aria-label="Jobs">
            <thead>
              <tr>
                <th>Job</th>
                <th>State</th>
                {session?.admin ? <th>Owner</th> : null}
                <th>Submitted</th>
                <th className="num">Duration</th>
                <th className="num">Tasks</th>
                <th className="num">Rows</th>
                <th className="num">Spilled</th>
              </tr>
            </thead>
            <tbody>
              {jobs.map((j) => (
                <tr key={j.id} data-testid="job-row" data-job={j.id}>
                  <td className={styles.mono}>
                    <Link href={`/jobs/view/?id=${encodeURIComponent(j.id)}`}>{j.id}</Link>
                  </td>
                  <td>
                    <StateBadge state={j.state} />
                  </td>
                  {session?.admin ? <td>{j.owner ?? "–"}</td> : null}
                  <td>{when(j.created)}</td>
                  <td className="num">{seconds(duration(j))}</td>
                  <td className="num">
                    {j.tasks.done} / {j.tasks.total}
                  </td>
                  <td className="num" data-testid="job-row-rows">
                    {count(j.result?.rows ?? j.rows_out)}
                  </td>
                  <td className="num">{bytes(j.spilled_bytes)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      {unfinished ? <p className="muted">Refreshing every {POLL_MS / 1000} s while a job runs.</p> : null}
    </>
  );
}
