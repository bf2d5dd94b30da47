/**
 * Page 2, a function's data.
 *
 * @internal
 */
import { HttpRouter } from "@effect/platform"

/** The data page's routes. */
export const routes = HttpRouter.empty
