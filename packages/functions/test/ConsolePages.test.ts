// The Model, Review and Try pages render user text escaped and bidi-isolated: label names and function data that
// hold markup or a right-to-left override cannot open a tag, leave an attribute or reverse the text around them.
import { describe, expect, it } from "vitest"
import * as Dismissals from "../src/console/Dismissals.js"
import { html } from "../src/console/Html.js"
import * as ModelPage from "../src/console/ModelPage.js"
import * as ReviewPage from "../src/console/ReviewPage.js"
import * as TryPage from "../src/console/TryPage.js"

const evil = `<script>alert("x")</script>`
const rtl = "\u202Egpj.exe"
const labels = [evil, rtl]
const csrf = html`<input type="hidden" name="_csrf" value="token">`

/** No element the pages did not write: every `<script` and quote-breaking sequence in user text is escaped. */
const expectEscaped = (page: string) => {
  expect(page).not.toContain("<script")
  expect(page).toContain("&lt;script&gt;")
  expect(page).toContain(`<bdi>${rtl}</bdi>`)
  // Shown text holds the override only inside <bdi>; a form field's value attribute is data, not text.
  expect(page.replace(/ value="[^"]*"/g, "").replaceAll(`<bdi>${rtl}</bdi>`, "")).not.toContain(rtl.slice(0, 1))
}

describe("console pages", () => {
  it("Model: escapes label names in the table, the confusion matrix and its cell links", () => {
    const cv = {
      folds: 3, total: 4, correct: 3, accuracy: 0.75, macroF1: 0.7, logLoss: 0.5, labels,
      confusionMatrix: [[2, 1], [0, 1]],
      perClass: labels.map((labelName) => ({ labelName, accuracy: 1, precision: 1, recall: 1, f1: 1, support: 2 })),
      calibration: { ece: 0.1, bins: [{ lower: 0, upper: 1, count: 4, confidence: 0.8, accuracy: 0.75 }] },
      outOfFold: { sampleIds: ["s1", "s2", "s3", "s4"], given: [0, 0, 0, 1], predicted: [0, 0, 1, 1], confidence: [0.9, 0.8, 0.6, 0.7] }
    }
    const metrics = { cv, functionId: "function_1", modelId: "model_1", createdAt: "2026-12-06T00:00:00Z", upToDate: true } as any
    const status = { id: "function_1", name: evil, model: { id: "model_1" }, training: { phase: "idle" } } as any
    const page = ModelPage.render({ status, metrics, versions: [] }, csrf).value
    expect(page).not.toContain("<script")
    expect(page).toContain(`<bdi>${rtl}</bdi>`)
    // The one off-diagonal cell with samples links to exactly them.
    expect(ModelPage.cellSamples(metrics, evil, rtl)).toEqual(["s3"])
    expect(page).toContain(ModelPage.cellHref("function_1", evil, rtl).replaceAll("&", "&amp;"))
    expect(page.match(/<a href=/g)).toHaveLength(3)
  })

  it("Review: escapes label names in every kind of suggestion, and hides dismissed ones", () => {
    const insights = {
      suspects: [{ id: "s1", given: evil, suggested: rtl, selfConfidence: 0.1, suggestedConfidence: 0.9 }, { id: "s2", given: rtl, suggested: evil, selfConfidence: 0.2, suggestedConfidence: 0.8 }],
      duplicates: [{ a: "s1", b: "s3", labelA: evil, labelB: rtl, kind: "near", similarity: 0.99, leak: "folds", conflict: true }],
      outliers: [{ id: "s4", label: rtl, nearest: evil, similarity: 0.2, score: 3 }]
    } as any
    const captures = [{ sampleId: "s5", capturedAt: "", reason: "low-confidence", labelName: evil, confidence: 0.4, modelId: "m", externalId: null }] as const
    const view = { functionId: "function_1", labels, insights, captures, dismissed: new Set([Dismissals.key("suspect", "s2")]) }
    const page = ReviewPage.render(view, csrf).value
    expectEscaped(page)
    expect(page.match(/data-kind="suspect"/g)).toHaveLength(1)
    expect(page).toContain(`data-subject="${Dismissals.pairSubject("s3", "s1")}"`)
    expect(page.match(/name="_csrf"/g)?.length).toBe(page.match(/<form /g)?.length)
  })

  it("Review: reads a card's post as a decision, and refuses a malformed one", () => {
    const form = (fields: Record<string, string>) => (name: string) => fields[name]
    expect(ReviewPage.decision(form({ action: "relabel", sampleId: "s1", label: "cats" }))).toEqual({ action: "relabel", sampleId: "s1", label: "cats" })
    expect(ReviewPage.decision(form({ action: "dismiss", kind: "outlier", subject: "s1" }))).toEqual({ action: "dismiss", kind: "outlier", subject: "s1" })
    expect(ReviewPage.decision(form({ action: "dismiss", kind: "everything", subject: "s1" }))).toBeUndefined()
    expect(ReviewPage.decision(form({ action: "relabel", sampleId: "s1" }))).toBeUndefined()
    expect(ReviewPage.decision(form({ action: "drop-table" }))).toBeUndefined()
  })

  it("Try: escapes label names in the answer", () => {
    const page = TryPage.result({
      labelName: evil, labelId: "l1", confidence: 0.6, modelId: "model_1",
      labelConfidences: [{ labelName: evil, labelId: "l1", confidence: 0.6 }, { labelName: rtl, labelId: "l2", confidence: 0.4 }]
    }).value
    expectEscaped(page)
  })
})
