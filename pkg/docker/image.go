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
	"github.com/docker/docker/api/types/image"
)

// BuildImage builds an image from an in-memory context (file name to content and mode) with the classic
// builder, which needs no registry for FROM scratch.
func (c *Client) BuildImage(ctx context.Context, tag string, files map[string]File, labels map[string]string) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := files[n]
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
	resp, err := c.api.ImageBuild(ctx, &buf, build.ImageBuildOptions{
		Tags: []string{tag}, Remove: true, ForceRemove: true, Labels: labels, Version: build.BuilderV1,
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

// File is one file of a build context.
type File struct {
	Data []byte
	Mode int64
}

// ImageExists reports whether an image with this reference is present.
func (c *Client) ImageExists(ctx context.Context, ref string) (bool, error) {
	_, err := c.api.ImageInspect(ctx, ref)
	if err == nil {
		return true, nil
	}
	if err := classify("inspect image "+ref, err); err != nil && isNotFound(err) {
		return false, nil
	} else {
		return false, err
	}
}

// RemoveImage deletes an image by reference.
func (c *Client) RemoveImage(ctx context.Context, ref string) error {
	_, err := c.api.ImageRemove(ctx, ref, image.RemoveOptions{Force: true, PruneChildren: true})
	return classify("remove image "+ref, err)
}
