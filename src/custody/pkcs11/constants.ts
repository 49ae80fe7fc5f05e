/**
 * The PKCS#11 numbers this backend uses (values fixed by the PKCS#11 2.40 standard). They live
 * here rather than being read off the lazily loaded pkcs11js module so that error classification
 * and templates need no native code; a unit test checks every value against pkcs11js.
 */

export const CKA = {
  CLASS: 0x0,
  TOKEN: 0x1,
  PRIVATE: 0x2,
  LABEL: 0x3,
  VALUE: 0x11,
  KEY_TYPE: 0x100,
  ID: 0x102,
  SENSITIVE: 0x103,
  ENCRYPT: 0x104,
  DECRYPT: 0x105,
  WRAP: 0x106,
  UNWRAP: 0x107,
  SIGN: 0x108,
  VERIFY: 0x10a,
  DERIVE: 0x10c,
  MODULUS: 0x120,
  PUBLIC_EXPONENT: 0x122,
  VALUE_LEN: 0x161,
  EXTRACTABLE: 0x162,
  LOCAL: 0x163,
  NEVER_EXTRACTABLE: 0x164,
  ALWAYS_SENSITIVE: 0x165,
  MODIFIABLE: 0x170,
  EC_PARAMS: 0x180,
  EC_POINT: 0x181,
} as const;

export const CKO = { PUBLIC_KEY: 0x2, PRIVATE_KEY: 0x3, SECRET_KEY: 0x4 } as const;
export const CKK = { RSA: 0x0, EC: 0x3, AES: 0x1f } as const;

export const CKM = {
  RSA_PKCS_OAEP: 0x9,
  SHA_1: 0x220,
  SHA256: 0x250,
  EC_KEY_PAIR_GEN: 0x1040,
  ECDSA: 0x1041,
  AES_KEY_GEN: 0x1080,
  AES_GCM: 0x1087,
  AES_CMAC: 0x108a,
  AES_KEY_WRAP: 0x2109,
  AES_KEY_WRAP_PAD: 0x210a,
} as const;

export const CKG = { MGF1_SHA1: 0x1, MGF1_SHA256: 0x2 } as const;
/** CK_RSA_PKCS_OAEP_PARAMS.source: the label is given in `sourceData` (empty here). Not exported by pkcs11js. */
export const CKZ_DATA_SPECIFIED = 0x1;

export const CKF = {
  /** C_Initialize: the library may use OS locking (required: pkcs11js *Async calls run on worker threads). */
  OS_LOCKING_OK: 0x2,
  /** C_OpenSession flags. */
  RW_SESSION: 0x2,
  SERIAL_SESSION: 0x4,
  /** CK_TOKEN_INFO flags. */
  WRITE_PROTECTED: 0x2,
  LOGIN_REQUIRED: 0x4,
  USER_PIN_INITIALIZED: 0x8,
  TOKEN_INITIALIZED: 0x400,
  USER_PIN_COUNT_LOW: 0x10000,
  USER_PIN_FINAL_TRY: 0x20000,
  USER_PIN_LOCKED: 0x40000,
  USER_PIN_TO_BE_CHANGED: 0x80000,
} as const;

export const CKU_USER = 0x1;
/** CK_SESSION_INFO.state of a logged-in R/W session. Not exported by pkcs11js. */
export const CKS_RW_USER_FUNCTIONS = 0x3;

/** pkcs11js mechanism-parameter kinds (pkcs11js's own numbering, not PKCS#11's). */
export const CK_PARAMS = {
  RSA_OAEP: 4,
  /** CK_GCM_PARAMS with ulIvBits set; pkcs11js's CK_PARAMS_AES_GCM (3) leaves ulIvBits uninitialised. */
  AES_GCM_v240: 7,
} as const;

export const CKR = {
  OK: 0x0,
  GENERAL_ERROR: 0x5,
  FUNCTION_FAILED: 0x6,
  ARGUMENTS_BAD: 0x7,
  ATTRIBUTE_SENSITIVE: 0x11,
  ATTRIBUTE_VALUE_INVALID: 0x13,
  DATA_LEN_RANGE: 0x21,
  DEVICE_ERROR: 0x30,
  DEVICE_MEMORY: 0x31,
  DEVICE_REMOVED: 0x32,
  ENCRYPTED_DATA_INVALID: 0x40,
  KEY_HANDLE_INVALID: 0x60,
  KEY_SIZE_RANGE: 0x62,
  KEY_TYPE_INCONSISTENT: 0x63,
  KEY_FUNCTION_NOT_PERMITTED: 0x68,
  KEY_UNEXTRACTABLE: 0x6a,
  MECHANISM_INVALID: 0x70,
  MECHANISM_PARAM_INVALID: 0x71,
  OBJECT_HANDLE_INVALID: 0x82,
  PIN_INCORRECT: 0xa0,
  PIN_INVALID: 0xa1,
  PIN_LEN_RANGE: 0xa2,
  PIN_EXPIRED: 0xa3,
  PIN_LOCKED: 0xa4,
  SESSION_CLOSED: 0xb0,
  SESSION_COUNT: 0xb1,
  SESSION_HANDLE_INVALID: 0xb3,
  SIGNATURE_INVALID: 0xc0,
  TEMPLATE_INCOMPLETE: 0xd0,
  TEMPLATE_INCONSISTENT: 0xd1,
  TOKEN_NOT_PRESENT: 0xe0,
  TOKEN_NOT_RECOGNIZED: 0xe1,
  UNWRAPPING_KEY_HANDLE_INVALID: 0xf0,
  USER_ALREADY_LOGGED_IN: 0x100,
  USER_NOT_LOGGED_IN: 0x101,
  WRAPPED_KEY_INVALID: 0x110,
  WRAPPED_KEY_LEN_RANGE: 0x112,
  WRAPPING_KEY_HANDLE_INVALID: 0x113,
  WRAPPING_KEY_SIZE_RANGE: 0x114,
  WRAPPING_KEY_TYPE_INCONSISTENT: 0x115,
  BUFFER_TOO_SMALL: 0x150,
  CRYPTOKI_NOT_INITIALIZED: 0x190,
  CRYPTOKI_ALREADY_INITIALIZED: 0x191,
} as const;

const CKR_NAMES = new Map<number, string>(Object.entries(CKR).map(([k, v]) => [v, `CKR_${k}`]));

/** `CKR_SESSION_CLOSED`, or `CKR_0x…` for a value this table does not name. */
export const ckrName = (rv: number): string => CKR_NAMES.get(rv) ?? `CKR_0x${rv.toString(16)}`;
