/**
 * The `if-not-worse` promotion rule (`Preset.Settings.promote`): a retrain is held back when its cross-validated
 * macro-F1 is below the serving model's by more than the standard error of the difference. The two estimates come
 * from different data (the retrain saw newer samples), so they are treated as independent: the difference's standard
 * error is `sqrt(se_new^2 + se_serving^2)`, each `se` taken across its folds (`AutoML.FitResult.cv`). A model trained
 * before per-fold scores were kept counts as having none (`se` 0). A Tags model is compared on its out-of-fold macro-F1
 * over tags, without a standard error (its fit keeps no per-fold scores): any drop holds it back.
 *
 * @internal
 */
import type { ModelMetrics, TagsModelMetrics } from "../Retrainer.js"
import type { ModelVersionRecord } from "../Store.js"

const f = (x: number) => x.toFixed(3)

/** A model's macro-F1 and its standard error across folds (0 when unknown). */
const macroF1Of = (metrics: ModelMetrics | TagsModelMetrics) =>
  "output" in metrics
    ? { macroF1: metrics.cv.macro.f1, se: 0 }
    : { macroF1: metrics.cv.macroF1, se: metrics.cv.macroF1StandardError ?? 0 }

/** Why a retrain with these `metrics` should not replace `serving`, or `undefined` when it may. */
export const ifNotWorse = (metrics: ModelMetrics | TagsModelMetrics) => (serving: ModelVersionRecord): string | undefined => {
  const candidate = macroF1Of(metrics)
  const served = macroF1Of(serving.metrics as ModelMetrics | TagsModelMetrics)
  const se = Math.hypot(candidate.se, served.se)
  const gap = served.macroF1 - candidate.macroF1
  return gap > se
    ? `promote "if-not-worse": its cross-validated macro-F1 ${f(candidate.macroF1)} is ${f(gap)} below that of the ` +
      `serving model ${serving.id} (${f(served.macroF1)}), more than the standard error of the difference (${f(se)})`
    : undefined
}
