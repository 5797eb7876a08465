import Link from "next/link";

export default function NotFound() {
  return (
    <div className="empty">
      <strong>No page here</strong>
      <div>
        <Link href="/">Go to the start page</Link>
      </div>
    </div>
  );
}
