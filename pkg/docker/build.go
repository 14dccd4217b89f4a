package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"

	"github.com/docker/docker/api/types/build"
)

// BuildOptions describe an image build from an in-memory context.
type BuildOptions struct {
	Tag    string
	Files  map[string]File   // the build context: file name (slash-separated path) to content and mode
	Labels map[string]string // added to the image
	Args   map[string]string // --build-arg values, e.g. TARGETPLATFORM, which the classic builder does not set
}

// Build builds an image with the classic builder, which needs no registry for FROM scratch.
func (c *Client) Build(ctx context.Context, o BuildOptions) error {
	tag := o.Tag
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(o.Files))
	for n := range o.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := o.Files[n]
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: mode, Size: int64(len(f.Data))}); err != nil {
			return fmt.Errorf("build %s: %w", tag, err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			return fmt.Errorf("build %s: %w", tag, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("build %s: %w", tag, err)
	}
	args := make(map[string]*string, len(o.Args))
	for k, v := range o.Args {
		args[k] = &v
	}
	resp, err := c.api.ImageBuild(ctx, &buf, build.ImageBuildOptions{
		Tags: []string{tag}, Remove: true, ForceRemove: true, Labels: o.Labels, BuildArgs: args, Version: build.BuilderV1,
	})
	if err != nil {
		return classify("build "+tag, err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var m struct {
			Error  string `json:"error"`
			Stream string `json:"stream"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("build %s: read output: %w", tag, err)
		}
		if m.Error != "" {
			return fmt.Errorf("build %s: %s", tag, m.Error)
		}
	}
}

// ImageConfig is what an image runs as.
type ImageConfig struct {
	User         string
	Entrypoint   []string
	Cmd          []string
	Labels       map[string]string
	Env          []string
	ExposedPorts []string
}

// ImageConfigOf inspects an image's run configuration. A missing image is ErrNotFound.
func (c *Client) ImageConfigOf(ctx context.Context, ref string) (ImageConfig, error) {
	r, err := c.api.ImageInspect(ctx, ref)
	if err != nil {
		return ImageConfig{}, classify("inspect image "+ref, err)
	}
	var out ImageConfig
	if cfg := r.Config; cfg != nil {
		out = ImageConfig{User: cfg.User, Entrypoint: cfg.Entrypoint, Cmd: cfg.Cmd, Labels: cfg.Labels, Env: cfg.Env}
		for p := range cfg.ExposedPorts {
			out.ExposedPorts = append(out.ExposedPorts, p)
		}
		sort.Strings(out.ExposedPorts)
	}
	return out, nil
}
