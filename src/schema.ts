/**
 * Standard Schema (https://standardschema.dev) validation of payloads. The interface is copied
 * here, as the spec intends, so any compliant library (zod, valibot, arktype …) works without
 * redactor depending on one.
 */

/** The Standard Schema v1 interface. */
export interface StandardSchemaV1<Input = unknown, Output = Input> {
  readonly "~standard": {
    readonly version: 1;
    readonly vendor: string;
    readonly validate: (
      value: unknown,
    ) => StandardSchemaV1.Result<Output> | Promise<StandardSchemaV1.Result<Output>>;
    readonly types?: { readonly input: Input; readonly output: Output } | undefined;
  };
}

export declare namespace StandardSchemaV1 {
  type Result<Output> = { readonly value: Output; readonly issues?: undefined } | FailureResult;
  interface FailureResult {
    readonly issues: ReadonlyArray<Issue>;
  }
  interface Issue {
    readonly message: string;
    readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined;
  }
}

/** The outcome of validating one payload. */
export type ValidationOutcome = { ok: true; value: unknown } | { ok: false; error: string };

/** Validates `value`; on failure, one line listing every issue with its path. */
export async function validate(schema: StandardSchemaV1, value: unknown): Promise<ValidationOutcome> {
  let result = schema["~standard"].validate(value);
  if (result instanceof Promise) result = await result;
  if (!result.issues) return { ok: true, value: result.value };
  const issues = result.issues.map((issue) => {
    const path = (issue.path ?? []).map((p) => String(typeof p === "object" ? p.key : p)).join(".");
    return path ? `${path}: ${issue.message}` : issue.message;
  });
  return { ok: false, error: issues.join("; ") };
}
