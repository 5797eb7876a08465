"use client";

import { Empty, PageTitle } from "@/components/ui";

// Placeholder until the Database page lands (issue 14).
export default function Page() {
  return (
    <>
      <PageTitle title="Database" />
      <Empty title="This page is being built" />
    </>
  );
}
