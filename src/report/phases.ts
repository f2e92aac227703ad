// Seconds each phase of the main step took, for the metadata output and the job summary.
export type Phase = 'install' | 'evaluate' | 'restore' | 'push';

export class PhaseClock {
  readonly phases: Partial<Record<Phase, number>> = {};
  private mark = Date.now();

  /** Ends the current phase: its time goes to `phase`, or nowhere (time that belongs to no phase). */
  lap(phase?: Phase): number {
    const now = Date.now();
    const seconds = (now - this.mark) / 1000;
    this.mark = now;
    if (phase) this.phases[phase] = seconds;
    return seconds;
  }
}
