/** The body a simulated agent's targets answer every request with, for `cluster` (sim-agents.ts). */
export const simBody = (cluster: string): string => `ok ${cluster}\n`;
