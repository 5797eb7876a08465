/**
 * The frame of every page: navigation, who is signed in, sign out. A page other than
 * /signin/ needs a session; without one the visitor is sent to sign in and brought back.
 */
"use client";

import Link from "next/link";
import { usePathname, useRouter } from "next/navigation";
import { useEffect, type ReactNode } from "react";

import { logout, useSession } from "@/lib/session";

const PAGES: { href: string; label: string }[] = [
  { href: "/datasets/", label: "Datasets" },
  { href: "/sql/", label: "SQL" },
  { href: "/pipelines/", label: "Pipelines" },
  { href: "/jobs/", label: "Jobs" },
  { href: "/database/", label: "Database" },
  { href: "/cluster/", label: "Cluster" },
  { href: "/worker/", label: "Worker" },
];

export function Shell({ children }: { children: ReactNode }) {
  const pathname = usePathname() ?? "/";
  const router = useRouter();
  const s = useSession();
  const open = pathname.startsWith("/signin");

  useEffect(() => {
    if (s === null && !open) {
      const next = window.location.pathname + window.location.search;
      router.replace(`/signin/?next=${encodeURIComponent(next)}`);
    }
  }, [s, open, router]);

  if (open) return <main className="signin-main">{children}</main>;
  if (!s) return <main className="signin-main" aria-busy="true" />;
  return (
    <div className="shell">
      <nav className="nav" aria-label="Pages">
        <Link href="/" className="brand">
          platform
        </Link>
        <ul>
          {(s.admin ? [...PAGES, { href: "/users/", label: "Users" }] : PAGES).map((p) => (
            <li key={p.href}>
              <Link href={p.href} aria-current={pathname.startsWith(p.href) ? "page" : undefined}>
                {p.label}
              </Link>
            </li>
          ))}
        </ul>
        <div className="who">
          <span data-testid="who">
            {s.user}
            {s.admin ? " (admin)" : ""}
          </span>
          <button
            type="button"
            className="link"
            onClick={() => {
              void logout().then(() => router.replace("/signin/"));
            }}
          >
            Sign out
          </button>
        </div>
      </nav>
      <main className="content">{children}</main>
    </div>
  );
}
