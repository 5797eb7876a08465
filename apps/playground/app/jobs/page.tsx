"use client";

import { Empty, PageTitle } from "@/components/ui";

// Placeholder until the Jobs page lands (issue 14).
export default function Page() {
  return (
    <>
      <PageTitle title="Jobs" />
      <Empty title="This page is being built" />
    </>
  );
}
