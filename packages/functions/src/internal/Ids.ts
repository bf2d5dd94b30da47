/**
 * Record ids: a kind prefix and 20 random hex digits (`function_3fa9...`), like the ids of the hosted service.
 *
 * @internal
 */
import { randomBytes } from "node:crypto"

export type Kind = "function" | "label" | "sample" | "model"

export const make = (kind: Kind): string => `${kind}_${randomBytes(10).toString("hex")}`

/** An id as a client may send it: with its kind prefix, or without it as Nyckel's clients strip it (`3fa9...`). */
export const withPrefix = (kind: Kind, id: string): string => (id.includes("_") ? id : `${kind}_${id}`)
