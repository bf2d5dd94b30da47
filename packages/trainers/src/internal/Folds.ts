/** What single-label and multi-label fold planning share: checking their options, and turning a unit-to-fold assignment into folds. */
import { Either } from "effect"
import type { Fold } from "../CrossValidation.js"
import { TrainerError } from "../TrainerError.js"

/** `InvalidData` naming `field`. */
export const invalid = (field: string, message: string) => new TrainerError({ reason: "InvalidData", field, message })

/** The fold count, repeats and seed of a plan's options, defaults filled in; an error naming the option out of range. */
export const checkOptions = (
  options: { readonly folds?: number; readonly repeats?: number; readonly seed?: number; readonly groups?: ReadonlyArray<unknown> },
  rows: number
): Either.Either<{ readonly maxFolds: number; readonly repeats: number; readonly seed: number }, TrainerError> => {
  const maxFolds = options.folds ?? 5
  const repeats = options.repeats ?? 1
  if (!Number.isInteger(maxFolds) || maxFolds < 2) return Either.left(invalid("options.folds", `folds must be an integer >= 2, got ${maxFolds}`))
  if (!Number.isInteger(repeats) || repeats < 1) return Either.left(invalid("options.repeats", `repeats must be an integer >= 1, got ${repeats}`))
  if (options.groups !== undefined && options.groups.length !== rows) {
    return Either.left(invalid("options.groups", `${options.groups.length} group keys for ${rows} rows`))
  }
  return Either.right({ maxFolds, repeats, seed: options.seed ?? 0 })
}

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
