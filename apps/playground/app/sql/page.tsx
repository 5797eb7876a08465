"use client";

import { Empty, PageTitle } from "@/components/ui";

// Placeholder until the SQL page lands (issue 14).
export default function Page() {
  return (
    <>
      <PageTitle title="SQL" />
      <Empty title="This page is being built" />
    </>
  );
}
