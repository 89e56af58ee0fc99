/** The lab's teardown: steps registered as things come up, run once each, last registered first. */
import { errorMessage } from '@knet/runtime';

type Step = { what: string; step: () => Promise<unknown> | unknown };

export class Teardown {
  private steps: Step[] = [];
  private started = false;
  private late: Promise<void>[] = [];
  private failures: string[] = [];

  /**
   * Registers a step; `what` names it in failures. Once the teardown has started (Ctrl-C while a
   * scene is still coming up), a step registered late runs at once instead.
   */
  defer(what: string, step: () => Promise<unknown> | unknown): void {
    if (this.started) this.late.push(this.exec({ what, step }));
    else this.steps.push({ what, step });
  }

  /** Steps not run yet. */
  get pending(): number {
    return this.steps.length;
  }

  /**
   * Runs every registered step, last registered first, each once, also after a failed one, and
   * waits for steps registered late. Resolves to one line per failed step so far (empty: all ran).
   */
  async run(): Promise<string[]> {
    this.started = true;
    while (this.steps.length > 0) await this.exec(this.steps.pop() as Step);
    await Promise.all(this.late);
    return [...this.failures];
  }

  private async exec({ what, step }: Step): Promise<void> {
    try {
      await step();
    } catch (e) {
      this.failures.push(`${what}: ${errorMessage(e)}`);
    }
  }
}
