/**
 * The "unsupported in browser" list: types and nodes the interpreter refuses with an
 * `UnsupportedInBrowser` error rather than compute something different from the Python
 * evaluator. The Python side (platform_core.expr.browser) holds the same list, so a task whose
 * expression uses any of it is never sent to a browser; the conformance test checks they agree.
 */
import list from "./unsupported.json";

export interface Unsupported {
  types: Record<string, string>;
  nodes: Record<string, string>;
  functions: Record<string, string>;
}

export const UNSUPPORTED: Unsupported = {
  types: list.types as Record<string, string>,
  nodes: list.nodes as Record<string, string>,
  functions: list.functions as Record<string, string>,
};
