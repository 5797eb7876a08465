"use client";

import { Empty, PageTitle } from "@/components/ui";

// Placeholder until the Datasets page lands (issue 14).
export default function Page() {
  return (
    <>
      <PageTitle title="Datasets" />
      <Empty title="This page is being built" />
    </>
  );
}
