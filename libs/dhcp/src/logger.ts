/** The subset of a pino logger this library uses. */
export interface DhcpLogger {
  debug(obj: Record<string, unknown>, msg?: string): void;
  info(obj: Record<string, unknown>, msg?: string): void;
  warn(obj: Record<string, unknown>, msg?: string): void;
  error(obj: Record<string, unknown>, msg?: string): void;
}

const noop = (): void => undefined;

/** A logger that drops everything. */
export const silentLogger: DhcpLogger = { debug: noop, info: noop, warn: noop, error: noop };
