/**
 * A text input whose error is marked where it is: a wavy underline under the wrong part of
 * the text (the server's offsets), drawn by a backdrop that mirrors the input's text, and the
 * reason below it, tied to the input by aria-describedby. The text itself is never HTML.
 */
"use client";

import { useId, useLayoutEffect, useRef, type ChangeEvent } from "react";

import type { FieldError } from "./model";
import styles from "./pipelines.module.css";

export interface MarkedInputProps {
  label: string;
  value: string;
  onChange: (value: string) => void;
  error?: FieldError | null;
  placeholder?: string;
  list?: string;
  /** A mono font for expressions. */
  code?: boolean;
  testId?: string;
  className?: string;
}

export function MarkedInput({ label, value, onChange, error, placeholder, list, code = true, testId, className }: MarkedInputProps) {
  const id = useId();
  const backdrop = useRef<HTMLDivElement>(null);
  const input = useRef<HTMLInputElement>(null);
  // A long text scrolled sideways: the mark follows the input's scroll from the first paint.
  useLayoutEffect(() => {
    if (backdrop.current && input.current) backdrop.current.scrollLeft = input.current.scrollLeft;
  });
  const marked = error && error.start !== undefined && error.end !== undefined;
  let start = marked ? Math.max(0, Math.min(error.start!, value.length)) : 0;
  let end = marked ? Math.max(start, Math.min(error.end!, value.length)) : 0;
  if (marked && end === start) {
    // A point (e.g. "the text ended here"): mark one cell past the text.
    start = Math.min(start, value.length);
    end = start;
  }
  return (
    <div className={`${styles.field} ${className ?? ""}`}>
      <label htmlFor={id}>{label}</label>
      <div className={styles.marked}>
        {marked ? (
          <div ref={backdrop} className={`${styles.backdrop} ${code ? styles.code : ""}`} aria-hidden="true">
            {value.slice(0, start)}
            <mark className={styles.mark} data-testid="error-mark">
              {end > start ? value.slice(start, end) : "\u00a0"}
            </mark>
            {value.slice(end)}
          </div>
        ) : null}
        <input
          ref={input}
          id={id}
          type="text"
          className={`${styles.input} ${code ? styles.code : ""}`}
          value={value}
          placeholder={placeholder}
          list={list}
          spellCheck={false}
          autoComplete="off"
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? `${id}-err` : undefined}
          data-testid={testId}
          onChange={(e: ChangeEvent<HTMLInputElement>) => onChange(e.target.value)}
          onScroll={(e) => {
            if (backdrop.current) backdrop.current.scrollLeft = e.currentTarget.scrollLeft;
          }}
        />
      </div>
      {error ? (
        <span id={`${id}-err`} className={styles.fieldError} role="alert" data-testid="field-error">
          {error.message}
        </span>
      ) : null}
    </div>
  );
}
