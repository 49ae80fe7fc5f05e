/**
 * The examples at the end of every command's `--help`, by command path, in one place so that a test
 * can check every command has some and the docs can quote them.
 */
export const EXAMPLES: Readonly<Record<string, string>> = {
  keyanchor: `
  keyanchor serve --dev                                 # try it on a laptop (what npm start runs)
  keyanchor --config /etc/keyanchor/config.yaml serve
  keyanchor config check /etc/keyanchor/config.yaml
  keyanchor <command> --help                            # options and examples of one command`,
  'keyanchor serve': `
  keyanchor serve --dev                                       # a laptop: dev TLS CA, demo credentials and key (npm start)
  keyanchor --config /etc/keyanchor/config.yaml serve         # production: TLS and custody from the config
  keyanchor --config test.yaml serve --insecure-http --port 0 # tests: plain HTTP on loopback, a free port

Signals: SIGTERM/SIGINT drain and stop (a second one stops at once); SIGHUP reloads the policy, the
TLS certificate and key, and the admin JWKS file (each keeps its old version if the new one is bad).
The URL it listens on, with the port chosen for --port 0, is printed as "keyanchor listening on URL".`,
  'keyanchor config': `
  keyanchor config check /etc/keyanchor/config.yaml`,
  'keyanchor config check': `
  keyanchor config check /etc/keyanchor/config.yaml
  keyanchor config check --schema-only deploy/config.yaml      # on a build machine, without the files it names
  KEYANCHOR_CONFIG=/etc/keyanchor/config.yaml keyanchor config check -o json

Exit status: 0 when every check passes, 3 otherwise.`,
  'keyanchor policy': `
  keyanchor policy check /etc/keyanchor/policies`,
  'keyanchor policy check': `
  keyanchor policy check                     # the policyDir of the config
  keyanchor policy check ./policies/payments # a checkout, before a merge
  keyanchor policy check --root-key root-1.pub --root-key root-2.pub --threshold 2 ./policies/payments`,
  'keyanchor policy sign': `
  keyanchor policy sign --key signer.key --version 7 --expires 30d ./policies/payments
  keyanchor policy sign --add --key second-signer.key ./policies/payments      # a co-signature toward the threshold
  keyanchor policy sign --add --signature sig.bin --public-key hsm-signer.pub ./policies/payments   # made with openssl over "policy pae"`,
  'keyanchor policy pae': `
  keyanchor policy pae ./policies/payments > payload.bin   # what openssl (or a token) signs`,
  'keyanchor policy explain': `
  keyanchor policy explain --node-cert node.pem --binary ./payments-api --sig ./payments-api.sig --key payments/db ./policies/payments
  keyanchor policy explain --node-ca payments-nodes --san spiffe://payments.example/zone/web/node-4 --binary-sha256 <hex> --signed-by release --key payments/db --json`,
  'keyanchor policy test': `
  keyanchor policy test ./policies/payments    # runs tests/*.yaml beside the policy; exit 1 on a failing case`,
  'keyanchor policy schema': `
  keyanchor policy schema > policy.schema.json
  keyanchor policy schema --tests > policy-tests.schema.json`,
  'keyanchor keys': `
  keyanchor keys list
  keyanchor keys create payments/db
  KEYANCHOR_TOKEN=$(get-token) keyanchor --broker https://broker.example:8443 --ca ca.pem keys list -o text   # a running broker's admin API`,
  'keyanchor keys create': `
  keyanchor --config /etc/keyanchor/config.yaml keys create payments/db`,
  'keyanchor keys list': `
  keyanchor keys list
  keyanchor keys list -o text
  keyanchor --broker https://broker.example:8443 --token-file ~/.keyanchor-token keys list   # only the keys your teams may see`,
  'keyanchor keys show': `
  keyanchor keys show payments/db`,
  'keyanchor keys export': `
  keyanchor keys export > keystore-backup.json   # wrapped blobs only: useless without the KEK`,
  'keyanchor keys rotate': `
  keyanchor keys rotate payments/db              # releases hand out the new version from now on
  keyanchor --broker https://broker.example:8443 --client-cert me.pem --client-key me.key keys rotate payments/db`,
  'keyanchor keys disable': `
  keyanchor keys disable payments/db 1`,
  'keyanchor keys enable': `
  keyanchor keys enable payments/db 1`,
  'keyanchor keys destroy': `
  keyanchor keys destroy payments/db 1           # crypto-shredding: cannot be undone`,
  'keyanchor hsm': `
  keyanchor hsm status`,
  'keyanchor hsm init': `
  KEYANCHOR_HSM_PIN=… keyanchor --config /etc/keyanchor/config.yaml hsm init`,
  'keyanchor hsm status': `
  keyanchor hsm status
  keyanchor hsm status -o json | jq .probe

Exit status: 1 when the KEK is missing or unacceptable, or a probe release through the configured
mechanisms fails (e.g. an OAEP hash the token does not support).`,
  'keyanchor audit': `
  keyanchor audit key > audit.pub
  keyanchor audit verify --key audit.pub --against /mnt/witness/keyanchor.checkpoints`,
  'keyanchor audit verify': `
  keyanchor audit verify --key audit.pub                       # the log's signatures, every chain, truncation up to the last checkpoint
  keyanchor audit verify --key audit.pub --against /mnt/witness/keyanchor.checkpoints   # and the store still holds what the witness has
  keyanchor audit verify --key audit.pub --against cp.txt      # a checkpoint text, its signature in cp.sig

Exit status: 3 at the first bad record or log entry, or when the store no longer holds the witnessed checkpoint.`,
  'keyanchor audit checkpoint': `
  keyanchor audit checkpoint                   # sign every uncovered chain now, send to the file and webhook witnesses
  keyanchor audit checkpoint --out cp && openssl dgst -sha256 -verify audit.pub -signature cp.sig cp.txt`,
  'keyanchor audit key': `
  keyanchor audit key > audit.pub              # pin this where you verify
  openssl pkey -pubin -in audit.pub -outform DER | sha256sum   # its id, as checkpoints name it`,
  'keyanchor audit search': `
  keyanchor audit search --key payments/db --since 24h
  keyanchor audit search --decision refusal --code software_not_approved --since 2030-01-01T00:00:00Z -o json
  keyanchor audit search --node spiffe://prod/zone/eu/node-7 --limit 50 --after <cursor>`,
  'keyanchor audit tail': `
  keyanchor audit tail --follow --cursor-file /var/lib/siem/keyanchor.cursor | siem-shipper   # resumes where it stopped`,
  'keyanchor audit prune': `
  keyanchor audit prune --before 400d          # up to the newest witnessed checkpoint before then
  keyanchor audit prune --before 400d --against /mnt/witness/keyanchor.checkpoints`,
  'keyanchor audit import': `
  keyanchor audit import state/audit.jsonl     # an earlier version's trail: its chain is verified first`,
  'keyanchor keys import': `
  keyanchor keys import keystore-backup.json   # \`keys export\` output: all keys or none; wrapped by the configured KEK
  keyanchor keys import state/keystore.json    # an earlier version's keystore file`,
  'keyanchor store': `
  keyanchor --config /etc/keyanchor/config.yaml store migrate
  keyanchor store status`,
  'keyanchor store migrate': `
  KEYANCHOR_DB_PASSWORD=… keyanchor --config /etc/keyanchor/config.yaml store migrate   # once per schema version, before the brokers start
  keyanchor store migrate                      # the embedded SQLite store (serve also migrates it)`,
  'keyanchor store status': `
  keyanchor store status                       # kind, schema version, KEK identity (JSON)
  keyanchor store status -o text`,
  'keyanchor suspend': `
  keyanchor suspend software payments-api --reason "incident 4711: key pulls from a compromised pod"
  keyanchor suspend node spiffe://payments.example/zone/pci/node-7 --reason "node key stolen"
  keyanchor suspend list
  keyanchor suspend clear software:payments-api
  KEYANCHOR_TOKEN=$(get-token) keyanchor --broker https://broker.example:8443 suspend list   # security role, through the admin API`,
  'keyanchor suspend software': `
  keyanchor suspend software payments-api --reason "incident 4711"`,
  'keyanchor suspend zone': `
  keyanchor suspend zone pci --reason "PCI network under investigation"`,
  'keyanchor suspend key': `
  keyanchor suspend key payments/card-data --reason "suspected exfiltration"`,
  'keyanchor suspend node': `
  keyanchor suspend node spiffe://payments.example/zone/pci/node-7 --reason "node key stolen"
  keyanchor suspend node sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 --reason "laptop lost"
  keyanchor suspend node serial:4a:1f:03 --reason "certificate reported compromised"`,
  'keyanchor suspend list': `
  keyanchor suspend list
  keyanchor suspend list -o json | jq -r '.[].subject'`,
  'keyanchor suspend show': `
  keyanchor suspend show software:payments-api          # the active suspension first, with the figures an alarm recorded`,
  'keyanchor suspend clear': `
  keyanchor suspend clear software:payments-api
  keyanchor --broker https://broker.example:8443 suspend clear node:spiffe://payments.example/zone/pci/node-7`,
  'keyanchor demo': `
  npm start          # terminal 1: keyanchor serve --dev
  npm run demo       # terminal 2: keyanchor demo`,
};
