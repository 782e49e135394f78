/**
 * The CLI's errors and exit codes. Scripts branch on the exit code, so each kind of trouble has
 * one: 0 when the command did what was asked, 1 when it could not (Redis unreachable, ask timed
 * out, unknown message …), 2 when the command line itself is wrong.
 */
import { RedactorError } from "../errors.js";

/** Exit codes of the `redactor` command. */
export const ExitCode = {
  /** The command did what was asked. */
  OK: 0,
  /** The command ran but failed: no reply, unknown message, Redis unreachable … */
  FAILURE: 1,
  /** The command line is wrong: unknown command or option, missing or bad argument. */
  USAGE: 2,
} as const;

/** One of the CLI's exit codes. */
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** The command line is wrong; the message says what and how to fix it. Exit code 2. */
export class UsageError extends RedactorError {
  override name = "UsageError";
  readonly exitCode = ExitCode.USAGE;
  constructor(
    message: string,
    /** The command whose usage line is printed after the message, if any. */
    readonly command?: string,
  ) {
    super(message);
  }
}

/** The command could not do what was asked; the message says why and what to do. Exit code 1. */
export class CommandFailedError extends RedactorError {
  override name = "CommandFailedError";
  readonly exitCode = ExitCode.FAILURE;
}
