/** The form of names in policy files (zones, software entries, limits, alarms…). */
import { z } from 'zod';

export const PolicyName = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'a name of lowercase letters, digits, ".", "_" or "-"');

export const Description = z.string().max(2000).optional();
