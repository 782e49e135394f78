/** Plain-text tables for people; scripts use `--json` instead. */

/** One column of a table. */
export interface Column {
  /** Heading, printed in capitals. */
  header: string;
  /**
   * Numbers read better right-aligned.
   * @default "left"
   */
  align?: "left" | "right";
  /**
   * Cells longer than this are cut with `…`, so that one long error does not push every other
   * column off the screen.
   * @default no limit
   */
  max?: number;
}

/** Width of a string in terminal cells; good enough for the ASCII and arrows the CLI prints. */
function width(text: string): number {
  return [...text].length;
}

function clip(text: string, max: number | undefined): string {
  const oneLine = text.replace(/\s*\n\s*/g, " ");
  if (max === undefined || width(oneLine) <= max) return oneLine;
  return `${[...oneLine].slice(0, Math.max(1, max - 1)).join("")}…`;
}

/** Renders rows under their headers, columns two spaces apart; no trailing spaces. */
export function renderTable(columns: readonly Column[], rows: readonly (readonly string[])[]): string {
  const cells = rows.map((row) => columns.map((col, i) => clip(row[i] ?? "", col.max)));
  const widths = columns.map((col, i) =>
    Math.max(width(col.header), ...cells.map((row) => width(row[i] ?? ""))),
  );
  const line = (row: readonly string[]) =>
    row
      .map((cell, i) => {
        const pad = " ".repeat((widths[i] as number) - width(cell));
        return columns[i]?.align === "right" ? pad + cell : cell + pad;
      })
      .join("  ")
      .trimEnd();
  return [line(columns.map((c) => c.header.toUpperCase())), ...cells.map(line)].join("\n");
}

/** Label/value lines, labels aligned: for one record such as a message. */
export function renderFields(fields: readonly (readonly [string, string])[]): string {
  const labelWidth = Math.max(0, ...fields.map(([label]) => width(label)));
  return fields.map(([label, value]) => `${label.padEnd(labelWidth)}  ${value}`.trimEnd()).join("\n");
}
