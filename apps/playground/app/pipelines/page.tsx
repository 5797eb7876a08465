"use client";

import { Empty, PageTitle } from "@/components/ui";

// Placeholder until the Pipelines page lands (issue 14).
export default function Page() {
  return (
    <>
      <PageTitle title="Pipelines" />
      <Empty title="This page is being built" />
    </>
  );
}
