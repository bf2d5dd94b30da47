/**
 * The `if-not-worse` promotion rule (`Preset.Settings.promote`): a retrain is held back when its cross-validated
 * macro-F1 is below the serving model's by more than the standard error of the difference. The two estimates come
 * from different data (the retrain saw newer samples), so they are treated as independent: the difference's standard
 * error is `sqrt(se_new^2 + se_serving^2)`, each `se` taken across its folds (`AutoML.FitResult.cv`). A model trained
 * before per-fold scores were kept counts as having none (`se` 0).
 *
 * @internal
 */
import type { ModelMetrics } from "../Retrainer.js"
import type { ModelVersionRecord } from "../Store.js"

const f = (x: number) => x.toFixed(3)

/** Why a retrain with cross-validation `candidate` should not replace `serving`, or `undefined` when it may. */
export const ifNotWorse = (candidate: ModelMetrics["cv"]) => (serving: ModelVersionRecord): string | undefined => {
  const served = (serving.metrics as ModelMetrics).cv
  const se = Math.hypot(candidate.macroF1StandardError ?? 0, served.macroF1StandardError ?? 0)
  const gap = served.macroF1 - candidate.macroF1
  return gap > se
    ? `promote "if-not-worse": its cross-validated macro-F1 ${f(candidate.macroF1)} is ${f(gap)} below that of the ` +
      `serving model ${serving.id} (${f(served.macroF1)}), more than the standard error of the difference (${f(se)})`
    : undefined
}
