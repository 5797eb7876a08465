/**
 * The errors of the interpreter, by kind, as the Python evaluator names them
 * (platform_core.expr): a malformed or ill-typed expression is an `ExpressionError`; data that
 * makes a well-typed expression fail is one of the `EvaluationError` kinds, as DuckDB would
 * fail; `UnsupportedInBrowser` is what the browser refuses rather than compute differently.
 */

export type ErrorKind =
  | "ExpressionError"
  | "EvaluationError"
  | "OutOfRangeError"
  | "DivisionByZeroError"
  | "ConversionError"
  | "UnsupportedInBrowser";

export class ExprError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
  ) {
    super(message);
    this.name = kind;
  }
}

export const fail = (message: string): never => {
  throw new ExprError("ExpressionError", message);
};
export const outOfRange = (message: string): never => {
  throw new ExprError("OutOfRangeError", `Out of Range Error: ${message}`);
};
export const divisionByZero = (message: string): never => {
  throw new ExprError("DivisionByZeroError", `Division by zero in ${message}`);
};
export const conversion = (message: string): never => {
  throw new ExprError("ConversionError", `Conversion Error: ${message}`);
};
export const unsupported = (message: string): never => {
  throw new ExprError("UnsupportedInBrowser", `unsupported in the browser: ${message}`);
};

/** A type rule that does not apply (the checker adds where). */
export class TypeProblem extends Error {}
export const ensure = (condition: boolean, message: string): void => {
  if (!condition) throw new TypeProblem(message);
};
