/** A WAI-ARIA tab strip: one look on every page, arrow keys move between tabs. */
"use client";

import { useRef, type KeyboardEvent } from "react";

export type TabItem<T extends string> = { id: T; label: string };

/** The strip only; the page renders the panel with `tabPanelProps(current)` so both stay linked. */
export function Tabs<T extends string>({
  label,
  items,
  current,
  onSelect,
}: {
  label: string;
  items: readonly TabItem<T>[];
  current: T;
  onSelect: (id: T) => void;
}) {
  const strip = useRef<HTMLDivElement>(null);

  function onKeyDown(event: KeyboardEvent<HTMLDivElement>) {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    const at = items.findIndex((t) => t.id === current);
    let next: number | null = null;
    if (step !== undefined) next = (at + step + items.length) % items.length;
    else if (event.key === "Home") next = 0;
    else if (event.key === "End") next = items.length - 1;
    if (next === null || items.length === 0) return;
    event.preventDefault();
    onSelect(items[next].id);
    strip.current?.querySelectorAll<HTMLButtonElement>('[role="tab"]')[next]?.focus();
  }

  return (
    <div ref={strip} className="tabs" role="tablist" aria-label={label} onKeyDown={onKeyDown}>
      {items.map((t) => (
        <button
          key={t.id}
          type="button"
          role="tab"
          id={`tab-${t.id}`}
          aria-selected={t.id === current}
          aria-controls={`panel-${t.id}`}
          tabIndex={t.id === current ? 0 : -1}
          onClick={() => onSelect(t.id)}
        >
          {t.label}
        </button>
      ))}
    </div>
  );
}

/** The attributes of the panel that shows tab `current`. */
export function tabPanelProps(current: string) {
  return { role: "tabpanel", id: `panel-${current}`, "aria-labelledby": `tab-${current}` } as const;
}
