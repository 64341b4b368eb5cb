//! A CA and a serving certificate for the webhook, for clusters without
//! cert-manager and for a first run on a laptop.
//!
//! The CA's private key is never written: nobody can mint more certificates
//! from it. Rotation means generating a new pair and updating `caBundle`.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

pub const CA_FILE: &str = "ca.crt";
pub const CERT_FILE: &str = "tls.crt";
pub const KEY_FILE: &str = "tls.key";

/// What the serving certificate is for.
#[derive(Debug, Clone)]
pub struct CertRequest {
    pub service: String,
    pub namespace: String,
    pub extra_dns: Vec<String>,
    pub extra_ips: Vec<IpAddr>,
    pub valid_days: u32,
}

impl CertRequest {
    /// Every name the API server may dial a Service by.
    pub fn dns_names(&self) -> Vec<String> {
        let (service, namespace) = (&self.service, &self.namespace);
        let mut names = vec![
            service.clone(),
            format!("{service}.{namespace}"),
            format!("{service}.{namespace}.svc"),
            format!("{service}.{namespace}.svc.cluster.local"),
        ];
        for extra in &self.extra_dns {
            if !names.contains(extra) {
                names.push(extra.clone());
            }
        }
        names
    }

    /// The defaults for a first run: the default Service names plus loopback.
    pub fn development() -> Self {
        CertRequest {
            service: "registry-rewriter".into(),
            namespace: "registry-rewriter".into(),
            extra_dns: vec!["localhost".into()],
            extra_ips: vec![[127, 0, 0, 1].into(), "::1".parse().expect("valid address")],
            valid_days: 365,
        }
    }
}

/// A generated CA certificate and serving pair, in PEM.
#[derive(Debug, Clone)]
pub struct GeneratedCerts {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("invalid certificate request: --valid-days must be at least 1")]
    NoValidity,
    #[error("generating the certificate")]
    Generate(#[from] rcgen::Error),
    #[error("{}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl GeneratedCerts {
    pub fn generate(request: &CertRequest) -> Result<Self, CertsError> {
        if request.valid_days == 0 {
            return Err(CertsError::NoValidity);
        }
        let now = OffsetDateTime::now_utc();
        // Backdated a little, for clocks that are slightly behind.
        let not_before = now - Duration::minutes(5);
        let not_after = now + Duration::days(i64::from(request.valid_days));

        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = name(&format!("{} webhook CA", request.service));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params.not_before = not_before;
        // The CA outlives the leaf so that a re-issued leaf fits under it.
        ca_params.not_after = not_after + Duration::days(1);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

        let dns_names = request.dns_names();
        let mut params = CertificateParams::new(dns_names.clone())?;
        params
            .subject_alt_names
            .extend(request.extra_ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.distinguished_name = name(&dns_names[2]);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = not_before;
        params.not_after = not_after;
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca)?;

        Ok(GeneratedCerts {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// `caBundle` for the MutatingWebhookConfiguration.
    pub fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.ca_pem)
    }

    /// Writes `ca.crt`, `tls.crt` and `tls.key` (the key readable by its owner only).
    pub fn write_to(&self, dir: &Path) -> Result<(), CertsError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CertsError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io(dir))?;
        let files = [
            (CA_FILE, &self.ca_pem, 0o644),
            (CERT_FILE, &self.cert_pem, 0o644),
            (KEY_FILE, &self.key_pem, 0o600),
        ];
        for (file, contents, mode) in files {
            let path = dir.join(file);
            write_file(&path, contents, mode).map_err(io(&path))?;
        }
        Ok(())
    }
}

/// Writes through a temporary file and a rename, so that a server reading
/// the directory never sees half a file.
fn write_file(path: &Path, contents: &str, mode: u32) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    fs::write(&temporary, contents)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&temporary, fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    fs::rename(&temporary, path)
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

/// What `ensure_development_certs` found or made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevelopmentCerts {
    /// A new pair was generated.
    pub created: bool,
    /// The serving certificate is valid for `localhost` and `127.0.0.1`.
    pub covers_localhost: bool,
}

/// Uses the certificates in `dir` when they are there and valid for at
/// least another day; otherwise generates a development pair. A pair made
/// for the cluster (`registry-rewriter certs --out certs`) is used, never
/// overwritten.
pub fn ensure_development_certs(dir: &Path) -> Result<DevelopmentCerts, CertsError> {
    let existing = fs::read(dir.join(CERT_FILE))
        .ok()
        .filter(|_| dir.join(CA_FILE).is_file() && dir.join(KEY_FILE).is_file());
    if let Some(pem) = existing {
        let still_valid = not_after(&pem)
            .is_ok_and(|not_after| not_after > OffsetDateTime::now_utc() + Duration::days(1));
        if still_valid {
            return Ok(DevelopmentCerts {
                created: false,
                covers_localhost: covers_localhost(&pem),
            });
        }
    }
    GeneratedCerts::generate(&CertRequest::development())?.write_to(dir)?;
    Ok(DevelopmentCerts {
        created: true,
        covers_localhost: true,
    })
}

/// Expiry of the first certificate in a PEM chain.
pub fn not_after(pem: &[u8]) -> Result<OffsetDateTime, CertificateError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(CertificateError::Pem)?;
    let cert = pem.parse_x509().map_err(CertificateError::X509)?;
    Ok(cert.validity().not_after.to_datetime())
}

/// A certificate whose expiry cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("not PEM")]
    Pem(#[source] x509_parser::nom::Err<x509_parser::error::PEMError>),
    #[error("not an X.509 certificate")]
    X509(#[source] x509_parser::nom::Err<x509_parser::error::X509Error>),
}

/// Does the first certificate in `pem` name `localhost` and `127.0.0.1`?
pub fn covers_localhost(pem: &[u8]) -> bool {
    use x509_parser::extensions::GeneralName;
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(pem) else {
        return false;
    };
    let Ok(cert) = pem.parse_x509() else {
        return false;
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return false;
    };
    let names = &san.value.general_names;
    names
        .iter()
        .any(|n| matches!(n, GeneralName::DNSName("localhost")))
        && names
            .iter()
            .any(|n| matches!(n, GeneralName::IPAddress(ip) if *ip == [127, 0, 0, 1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_pair_is_made_once_and_a_cluster_pair_is_kept() {
        let dir =
            std::env::temp_dir().join(format!("registry-rewriter-certs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let first = ensure_development_certs(&dir).unwrap();
        assert_eq!(
            first,
            DevelopmentCerts {
                created: true,
                covers_localhost: true
            }
        );
        let cert = fs::read(dir.join(CERT_FILE)).unwrap();
        assert!(covers_localhost(&cert));
        let again = ensure_development_certs(&dir).unwrap();
        assert!(!again.created);
        assert_eq!(fs::read(dir.join(CERT_FILE)).unwrap(), cert, "reused");

        let cluster = CertRequest {
            extra_dns: vec![],
            extra_ips: vec![],
            ..CertRequest::development()
        };
        GeneratedCerts::generate(&cluster)
            .unwrap()
            .write_to(&dir)
            .unwrap();
        let cluster_cert = fs::read(dir.join(CERT_FILE)).unwrap();
        let kept = ensure_development_certs(&dir).unwrap();
        assert_eq!(
            kept,
            DevelopmentCerts {
                created: false,
                covers_localhost: false
            }
        );
        assert_eq!(
            fs::read(dir.join(CERT_FILE)).unwrap(),
            cluster_cert,
            "never overwritten"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
