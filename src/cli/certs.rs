//! `registry-rewriter certs`: a CA and a serving certificate for the Service.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::CliError;
use crate::certs::{self, CertRequest, GeneratedCerts};

#[derive(Args, Debug)]
pub(super) struct CertsArgs {
    /// Name of the webhook's Service.
    #[arg(long, default_value = "registry-rewriter")]
    service: String,
    /// Namespace of the webhook's Service.
    #[arg(long, default_value = "registry-rewriter")]
    namespace: String,
    /// Directory for ca.crt, tls.crt and tls.key.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Extra DNS name for the serving certificate (repeatable).
    #[arg(long = "dns", value_name = "NAME")]
    dns: Vec<String>,
    /// Extra IP address for the serving certificate (repeatable).
    #[arg(long = "ip", value_name = "ADDR")]
    ip: Vec<IpAddr>,
    /// Validity of the certificates, in days.
    #[arg(long, default_value_t = 365)]
    valid_days: u32,
}

pub(super) fn run(args: CertsArgs) -> Result<ExitCode, CliError> {
    let request = CertRequest {
        service: args.service,
        namespace: args.namespace,
        extra_dns: args.dns,
        extra_ips: args.ip,
        valid_days: args.valid_days,
    };
    let generated = GeneratedCerts::generate(&request)?;
    generated.write_to(&args.out)?;
    eprintln!(
        "wrote {dir}/{}, {dir}/{} and {dir}/{} for {}",
        certs::CA_FILE,
        certs::CERT_FILE,
        certs::KEY_FILE,
        request.dns_names().join(", "),
        dir = args.out.display()
    );
    eprintln!("caBundle for the MutatingWebhookConfiguration:");
    println!("{}", generated.ca_bundle());
    Ok(ExitCode::SUCCESS)
}
