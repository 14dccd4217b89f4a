package cmd

// The release image is FROM scratch: no CA bundle and no zoneinfo on disk. These two packages embed
// both in the binary, used only when the system has none (x509roots/fallback defers to system roots;
// time/tzdata to the ZONEINFO and system zoneinfo), so Slack, webhooks, the LLM providers, rediss:// and
// --timezone work in the image as they do on a host.
import (
	_ "time/tzdata"

	_ "golang.org/x/crypto/x509roots/fallback"
)
