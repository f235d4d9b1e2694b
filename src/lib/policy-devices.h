/* policy-devices.h: the readers of a policy's `devices:` and `gpu:` sections
 * (policy-devices.c), called by policy-yaml.c for those keys.
 *
 * Error contract: see error.h; errors name ORIGIN:LINE:COLUMN and the key.
 */
#ifndef WARDEN_POLICY_DEVICES_H
#define WARDEN_POLICY_DEVICES_H

#include "policy.h"

#include <yaml.h>

/* devices: [PATH[:ACCESS] | {path: PATH, access: ACCESS}]; replaces p->devices. */
int policy_yaml_devices(yaml_document_t *doc, const char *origin, yaml_node_t *v, const char *key,
                        struct warden_policy *p, struct warden_error **err);
/* gpu: {devices, memory, scrub, exclusive, uvm_tools}; keys not given keep their values. */
int policy_yaml_gpu(yaml_document_t *doc, const char *origin, yaml_node_t *v, const char *key,
                    struct warden_policy *p, struct warden_error **err);

#endif
