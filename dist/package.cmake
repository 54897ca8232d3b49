# SPDX-License-Identifier: Apache-2.0
#
# Debian packages with CPack, one per install component:
#   dkm-provider  dkm.so in OpenSSL's MODULESDIR, the openssl.cnf snippet,
#                 dkm(7)
#   dkmd          the key service, its migrations, systemd unit, sysusers.d
#                 entry, default dkmd.conf, dkmd(8), dkmd.conf(5)
#   dkmctl        the CLI, dkmctl(1)
# Build them from a tree configured with -DCMAKE_INSTALL_PREFIX=/usr (the
# paths compiled into dkmd, such as the migrations' directory, follow the
# prefix): `cmake --build B && (cd B && cpack)`. docs/operations.md,
# "Installing from the packages", says how; tests/package.sh does it.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME dkm)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "the dkm authors")
set(CPACK_PACKAGE_CONTACT "dkm maintainers <maintainers@dkm.invalid>")
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL provider dkmd dkmctl)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "")
set(CPACK_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
    OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)

# conffiles: what dpkg keeps when an administrator has changed it.
file(WRITE ${CMAKE_BINARY_DIR}/dist/provider/conffiles
    "${CMAKE_INSTALL_FULL_SYSCONFDIR}/ssl/openssl.cnf.d/dkm.cnf\n")
file(WRITE ${CMAKE_BINARY_DIR}/dist/dkmd/conffiles
    "${CMAKE_INSTALL_FULL_SYSCONFDIR}/dkm/dkmd.conf\n")

set(CPACK_DEBIAN_PROVIDER_PACKAGE_NAME dkm-provider)
set(CPACK_DEBIAN_PROVIDER_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_PROVIDER_PACKAGE_DEPENDS "tpm-udev")
set(CPACK_DEBIAN_PROVIDER_PACKAGE_RECOMMENDS "openssl")
# A tls_key held in the TPM is used through tpm2-openssl (dlopen'd by
# OpenSSL as a provider, so no shared-library dependency finds it).
set(CPACK_DEBIAN_PROVIDER_PACKAGE_SUGGESTS "tpm2-openssl")
set(CPACK_DEBIAN_PROVIDER_PACKAGE_CONTROL_EXTRA ${CMAKE_BINARY_DIR}/dist/provider/conffiles)
set(CPACK_COMPONENT_PROVIDER_DESCRIPTION
    "OpenSSL 3 provider for dkm group keys sealed to the local TPM
The dkm provider lets any OpenSSL application encrypt and decrypt with
keys of the dkm key service it never sees: keys are named by dkm: URIs,
fetched sealed to this machine's TPM, unsealed into locked memory, and
used through openssl pkeyutl, enc and storeutl.")

set(CPACK_DEBIAN_DKMD_PACKAGE_NAME dkmd)
set(CPACK_DEBIAN_DKMD_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_DKMD_PACKAGE_DEPENDS "tpm-udev, adduser")
set(CPACK_DEBIAN_DKMD_PACKAGE_RECOMMENDS "postgresql (>= 15), dkmctl")
set(CPACK_DEBIAN_DKMD_PACKAGE_CONTROL_EXTRA
    ${CMAKE_BINARY_DIR}/dist/dkmd/conffiles
    ${CMAKE_SOURCE_DIR}/dist/debian/dkmd/postinst
    ${CMAKE_SOURCE_DIR}/dist/debian/dkmd/postrm)
set(CPACK_COMPONENT_DKMD_DESCRIPTION
    "dkm key service: TPM-sealed group keys in PostgreSQL
dkmd keeps groups of symmetric keys, stored only sealed to the servers'
TPMs, and answers each node's fetch with the key sealed to that node's
TPM and signed. It runs under systemd (Type=notify, watchdog, sandbox)
as the user dkmd.")

set(CPACK_DEBIAN_DKMCTL_PACKAGE_NAME dkmctl)
set(CPACK_DEBIAN_DKMCTL_PACKAGE_SECTION admin)
# node init --tls and a --tls-key held in the TPM.
set(CPACK_DEBIAN_DKMCTL_PACKAGE_SUGGESTS "tpm2-openssl")
set(CPACK_COMPONENT_DKMCTL_DESCRIPTION
    "dkm administration and node command line
dkmctl makes a node's identity card from its TPM, administers the dkm
key service (nodes, groups, rotation, servers, audit) through its admin
socket or over TLS, shows whether dkmd is ready, and fetches a key as
the provider would, for debugging, without ever printing it.")

include(CPack)
