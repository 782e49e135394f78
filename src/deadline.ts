/** Waiting with a deadline, for shutdown paths that must end even when Redis does not answer. */

/**
 * Waits for `work` until `deadlineMs` (epoch ms); true when it settled in time. Its failure
 * counts as settled: the caller only wants to stop waiting.
 */
export async function settledBefore(work: Promise<unknown>, deadlineMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(0, deadlineMs - Date.now()));
    timer.unref();
  });
  try {
    return await Promise.race([
      work.then(
        () => true,
        () => true,
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
