/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every name the provider registers or answers to: algorithm names,
 * properties, parameter names and configuration keys, in one place.
 */
#ifndef DKM_PROVIDER_NAMES_H
#define DKM_PROVIDER_NAMES_H

#define DKM_PROV_NAME "dkm"
#define DKM_PROV_PROPERTIES "provider=dkm"
/* Fetches from the private library context never reach back into dkm. */
#define DKM_PRIVATE_PROPQ "provider!=dkm"

/* The key type: store data type, key manager and asymmetric cipher. */
#define DKM_ALG_KEY "DKM"
#define DKM_ALG_KEY_DESC "dkm group key held by the dkm provider"
/* The stream cipher of openssl enc. */
#define DKM_ALG_STREAM "DKM-AES-256-GCM"
#define DKM_ALG_STREAM_DESC "dkm segmented AES-256-GCM stream keyed by a dkm: URI"
/* URI scheme of the store loader. */
#define DKM_ALG_STORE "dkm"
#define DKM_ALG_STORE_DESC "dkm: group key URIs"

#define DKM_ENCODER_TEXT_PROPS "provider=dkm,output=text"

/* Key manager parameters (gettable). */
#define DKM_PARAM_GROUP "dkm-group"
#define DKM_PARAM_VERSION "dkm-version"
#define DKM_PARAM_KEY_ID "dkm-key-id"
#define DKM_PARAM_NOT_AFTER "dkm-not-after"
#define DKM_PARAM_CACHE_UNTIL "dkm-cache-until"
#define DKM_PARAM_URI "dkm-uri"

/* Asymmetric cipher context parameter: caller AAD (octet string). */
#define DKM_PARAM_AAD "dkm-aad"

/* Configuration keys of the provider's openssl.cnf section. */
#define DKM_CONF_SERVICE "service"
#define DKM_CONF_TCTI "tcti"
#define DKM_CONF_CACHE_DIR "cache_dir"
#define DKM_CONF_TRUST "trust"
#define DKM_CONF_TLS_KEY "tls_key"
#define DKM_CONF_TLS_CERT "tls_cert"
#define DKM_CONF_DEBUG "debug"
#define DKM_CONF_KEYSOURCE "keysource"
#define DKM_CONF_KEY_CACHE "key_cache"
#define DKM_CONF_TEST_KEYS "test_keys"
#define DKM_CONF_TEST_SEED "test_seed"
#define DKM_CONF_TEST_TTL "test_ttl"

/* Key source names. */
#define DKM_KEYSOURCE_SERVICE "service"
#define DKM_KEYSOURCE_TEST "test"

#endif
