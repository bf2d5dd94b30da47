/** What single-label and multi-label fold planning share: turning a unit-to-fold assignment into folds. */
import type { Fold } from "../CrossValidation.js"

const sorted = (rows: Array<number>): Int32Array => Int32Array.from(rows).sort()

/** Splits `assignment` (unit -> fold) into train/test row sets; a unit is one or more rows kept together. */
export const toFolds = (
  all: ReadonlyArray<{ readonly rows: ReadonlyArray<number> }>,
  assignment: Int32Array,
  k: number,
  repeat: number
): Array<Fold> =>
  Array.from({ length: k }, (_, index) => {
    const train: Array<number> = []
    const test: Array<number> = []
    all.forEach((u, j) => (assignment[j] === index ? test : train).push(...u.rows))
    return { repeat, index, train: sorted(train), test: sorted(test) }
  })
