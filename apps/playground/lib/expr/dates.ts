/**
 * Dates and timestamps to and from text as platform_core.expr._dates (DuckDB's forms: `2020-1-2`,
 * `2020/01/02`, `-44-03-15`, `0044-03-15 (BC)`, `epoch`, a time after the date, years beyond
 * 9999), and their parts. Dates are days and timestamps microseconds (BigInt) since 1970.
 */
import { daysFromCivil } from "./nodes";

export const DAY_US = 86_400_000_000n;
const DATE_LIMIT = 2 ** 31 - 2;
const TS_MIN = -9_223_372_022_400_000_000n;
const TS_MAX = 2n ** 63n - 2n;
const LAST_DAY = 106_751_991;

const PATTERN =
  /^[ \t\n\r\f\v]*(?<neg>-?)(?<y>[0-9]+)(?<s1>[-/ \\])(?<m>[0-9]{1,2})(?<s2>[-/ \\])(?<d>[0-9]{1,2})(?<bc> \(BC\))?(?<time>(?:T|[ \t])[ \t]*(?<H>[0-9]{1,2}):(?<M>[0-9]{1,2})(?::(?<S>[0-9]{1,2})(?:\.(?<F>[0-9]*))?)?(?<zone>Z|[+-](?<zh>[0-9]{2})(?::?(?<zm>[0-9]{2}))?)?)?(?<tail>[ \t\n\r\f\v]*)$/i;
const EPOCH = /^[ \t\n\r\f\v]*epoch[ \t\n\r\f\v]*$/i;

function daysInMonth(y: number, m: number): number {
  const leap = y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
  return m === 2 ? (leap ? 29 : 28) : [1, 3, 5, 7, 8, 10, 12].includes(m) ? 31 : 30;
}

/** Days (date) or microseconds (timestamp) of text as DuckDB reads it, or null when it does
 * not parse. */
export function parseTemporal(text: string, timestamp: boolean): number | bigint | null {
  if (EPOCH.test(text)) return timestamp ? 0n : 0;
  const m = PATTERN.exec(text);
  if (!m || !m.groups) return null;
  const g = (name: string) => m.groups?.[name] ?? "";
  if (g("s1") !== g("s2") || g("y").length > 9) return null;
  const hasTime = g("time") !== "";
  const tail = g("tail");
  if (hasTime ? tail.replaceAll(" ", "") !== "" : timestamp && tail !== "") return null;
  let year = Number(g("y"));
  if (g("neg") === "-") year = -year;
  if (g("bc") !== "") year = 1 - year;
  const month = Number(g("m"));
  const day = Number(g("d"));
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return null;
  const days = daysFromCivil(year, month, day);
  const [ofDay, timeOk] = timeFields(hasTime, g);
  if (!timeOk) return null;
  if (!timestamp) return Math.abs(days) <= DATE_LIMIT ? days : null;
  if (Math.abs(days) > LAST_DAY) return null;
  if (days === LAST_DAY && ofDay > TS_MAX - BigInt(LAST_DAY) * DAY_US) return null;
  const micros = BigInt(days) * DAY_US + ofDay;
  return micros >= TS_MIN && micros <= TS_MAX ? micros : null;
}

function timeFields(hasTime: boolean, g: (name: string) => string): [bigint, boolean] {
  const num = (name: string) => (hasTime && g(name) !== "" ? Number(g(name)) : 0);
  const [h, mi, s] = [num("H"), num("M"), num("S")];
  const fraction = hasTime ? g("F").slice(0, 6).padEnd(6, "0") : "0";
  const restZero = mi === 0 && s === 0 && g("F").replaceAll("0", "") === "";
  const valid = (h <= 23 || (h === 24 && restZero)) && mi <= 59 && s <= 59;
  const total = BigInt(h) * 3_600_000_000n + BigInt(mi) * 60_000_000n + BigInt(s) * 1_000_000n + BigInt(fraction);
  return [total, valid];
}

/** (year, month, day) of days since 1970 (astronomical years). */
export function civilFromDays(days: number): [number, number, number] {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  return [yoe + era * 400 + (m <= 2 ? 1 : 0), m, d];
}

const pad = (n: number | bigint, width: number) => String(n).padStart(width, "0");

function dateText(days: number): [string, string] {
  const [y, m, d] = civilFromDays(days);
  const bc = y <= 0;
  return [`${pad(bc ? 1 - y : y, 4)}-${pad(m, 2)}-${pad(d, 2)}`, bc ? " (BC)" : ""];
}

/** A date as DuckDB writes it (`0172-09-05 (BC)` before year 1). */
export function formatDate(days: number): string {
  const [text, era] = dateText(days);
  return text + era;
}

export const floorDiv = (a: bigint, b: bigint) => (a >= 0n ? a / b : -((-a + b - 1n) / b));

/** A timestamp as DuckDB writes it: the fraction without trailing zeros, the era after the date. */
export function formatTimestamp(micros: bigint): string {
  const days = floorDiv(micros, DAY_US);
  const ofDay = micros - days * DAY_US;
  const [date, era] = dateText(Number(days));
  const seconds = ofDay / 1_000_000n;
  const fraction = ofDay % 1_000_000n;
  const clock = `${pad(seconds / 3600n, 2)}:${pad((seconds / 60n) % 60n, 2)}:${pad(seconds % 60n, 2)}`;
  const digits = pad(fraction, 6).replace(/0+$/, "");
  return `${date}${era} ${clock}${digits ? `.${digits}` : ""}`;
}

/** year, month, day or hour of a date (days) or a timestamp (microseconds). */
export function datePart(name: string, value: number | bigint): bigint {
  const days = typeof value === "bigint" ? Number(floorDiv(value, DAY_US)) : value;
  if (name === "hour") {
    if (typeof value !== "bigint") return 0n;
    return (value - BigInt(days) * DAY_US) / 3_600_000_000n;
  }
  const [y, m, d] = civilFromDays(days);
  return BigInt(name === "year" ? y : name === "month" ? m : d);
}
