//! What Hetzner offers: locations, server types (with prices per location) and system
//! images, read from the API and turned into the provider vocabulary.

use hcloud::models;

use crate::error::Result;
use crate::provider::{Architecture, Image, ImageKind, Location, Price, ServerType};

use super::HetznerProvider;

fn arch(a: models::Architecture) -> Architecture {
    match a {
        models::Architecture::Arm => Architecture::Arm,
        models::Architecture::X86 => Architecture::X86,
    }
}

fn to_location(l: models::Location) -> Location {
    Location {
        name: l.name,
        description: l.description,
        city: l.city,
        country: l.country,
        network_zone: l.network_zone,
    }
}

fn to_server_type(t: models::ServerType) -> ServerType {
    ServerType {
        deprecated: t.deprecated.unwrap_or(false) || matches!(t.deprecation, Some(Some(_))),
        name: t.name,
        description: t.description,
        cores: u32::try_from(t.cores).unwrap_or(0),
        memory_gb: t.memory,
        disk_gb: t.disk,
        architecture: arch(t.architecture),
        dedicated_cpu: t.cpu_type == models::server_type::CpuType::Dedicated,
        prices: t
            .prices
            .into_iter()
            .map(|p| Price {
                location: p.location,
                monthly_gross: p.price_monthly.gross,
                monthly_net: p.price_monthly.net,
                hourly_gross: p.price_hourly.gross,
                hourly_net: p.price_hourly.net,
            })
            .collect(),
    }
}

fn to_image(i: models::Image) -> Image {
    use models::image::{OsFlavor as F, Type as T};
    Image {
        id: i.id,
        name: i.name,
        description: i.description,
        kind: match i.r#type {
            T::System => ImageKind::System,
            T::App => ImageKind::App,
            T::Snapshot => ImageKind::Snapshot,
            T::Backup => ImageKind::Backup,
        },
        os_flavor: match i.os_flavor {
            F::Alma => "alma",
            F::Centos => "centos",
            F::Debian => "debian",
            F::Fedora => "fedora",
            F::Opensuse => "opensuse",
            F::Rocky => "rocky",
            F::Ubuntu => "ubuntu",
            F::Unknown => "unknown",
        }
        .to_owned(),
        os_version: i.os_version,
        architecture: arch(i.architecture),
        deprecated: i.deprecated.is_some(),
    }
}

pub(super) async fn list_locations(hetzner: &HetznerProvider) -> Result<Vec<Location>> {
    let l: Vec<models::Location> = hetzner
        .list_all("list locations", "/locations", "locations", &[])
        .await?;
    Ok(l.into_iter().map(to_location).collect())
}

pub(super) async fn list_server_types(hetzner: &HetznerProvider) -> Result<Vec<ServerType>> {
    let t: Vec<models::ServerType> = hetzner
        .list_all("list server types", "/server_types", "server_types", &[])
        .await?;
    Ok(t.into_iter().map(to_server_type).collect())
}

pub(super) async fn list_images(hetzner: &HetznerProvider) -> Result<Vec<Image>> {
    let i: Vec<models::Image> = hetzner
        .list_all(
            "list images",
            "/images",
            "images",
            &[
                ("type", "system".to_owned()),
                ("status", "available".to_owned()),
            ],
        )
        .await?;
    Ok(i.into_iter().map(to_image).collect())
}
