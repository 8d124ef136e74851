/** Why every bench table shows the best sample next to the median (one wording for all of them). */
export const HOST_PHASES =
  "this VM's host alternates fast and slow phases for seconds to minutes, so medians of engines measured at different moments can differ by ±30%; best is the phase-robust figure";

/** The legend of a table whose samples are single calls. */
export const ONE_CALL_LEGEND = `med = median of the timed samples (one call each), best = the fastest sample: ${HOST_PHASES}`;
