"use client";

/** One job (/jobs/view/?id=...): its live record and progress, plan, task timeline and rows. */

import Link from "next/link";
import { useSearchParams } from "next/navigation";
import { Suspense } from "react";

import { JobProgress } from "@/components/jobs/JobProgress";
import { JobResult } from "@/components/jobs/JobResult";
import styles from "@/components/jobs/jobs.module.css";
import { useJob } from "@/components/jobs/record";
import { Timeline } from "@/components/jobs/Timeline";
import { Busy, Empty, ErrorLine, PageTitle } from "@/components/ui";
import { when } from "@/lib/format";

export default function Page() {
  return (
    <Suspense fallback={<Busy />}>
      <JobPage />
    </Suspense>
  );
}

function JobPage() {
  const id = useSearchParams()?.get("id") ?? null;
  const { job, error, setJob } = useJob(id);
  if (!id) {
    return (
      <>
        <PageTitle title="Job" />
        <Empty title="No job named">
          Open a job from the <Link href="/jobs/">Jobs</Link> list.
        </Empty>
      </>
    );
  }
  return (
    <>
      <PageTitle title={`Job ${id}`}>
        <Link href="/jobs/">All jobs</Link>
      </PageTitle>
      <ErrorLine error={error} />
      {!job && !error ? <Busy label="Loading the job" /> : null}
      {job ? (
        <>
          <section className="panel">
            <p className="muted" style={{ marginTop: 0 }}>
              {job.owner ? `Owner ${job.owner}; ` : ""}submitted {when(job.created)}
              {job.result?.where === "dataset" && job.result.dataset ? `; written to dataset ${job.result.dataset} v${job.result.version}` : ""}
            </p>
            <JobProgress job={job} onChange={setJob} />
          </section>
          <section className="panel">
            <h2 style={{ marginTop: 0 }}>Task timeline</h2>
            <Timeline job={job} />
          </section>
          <section className="panel">
            <h2 style={{ marginTop: 0 }}>Plan</h2>
            <pre className={styles.pre} data-testid="job-plan">
              {job.plan || "–"}
            </pre>
          </section>
          {job.state === "succeeded" && job.result?.where !== "dataset" ? (
            <section className="panel">
              <h2 style={{ marginTop: 0 }}>Result</h2>
              {job.result?.dropped ? (
                <Empty title="This result is no longer kept">The platform keeps the newest results only; run the pipeline again.</Empty>
              ) : (
                <JobResult id={id} rows={job.result?.rows} />
              )}
            </section>
          ) : null}
        </>
      ) : null}
    </>
  );
}
