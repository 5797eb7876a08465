"use client";

import { Empty, PageTitle } from "@/components/ui";

// Placeholder until the Cluster page lands (issue 14).
export default function Page() {
  return (
    <>
      <PageTitle title="Cluster" />
      <Empty title="This page is being built" />
    </>
  );
}
