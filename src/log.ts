import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * JSON-lines logger. Paths that could ever carry secret material are redacted as a second line of
 * defence; the first is that no code path puts a key, PIN or private JWK into a log call.
 */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { svc: 'keyanchor' },
      redact: { paths: ['*.pin', '*.password', '*.d', '*.jwe', '*.kek', 'err.cause'], censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination ?? process.stdout,
  );
}
