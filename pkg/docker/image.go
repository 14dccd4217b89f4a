package docker

import (
	"context"
	"fmt"
	"io"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// BuildImage builds an image from an in-memory context (file name to content and mode) with the classic
// builder, which needs no registry for FROM scratch.
func (c *Client) BuildImage(ctx context.Context, tag string, files map[string]File, labels map[string]string) error {
	return c.Build(ctx, BuildOptions{Tag: tag, Files: files, Labels: labels})
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

// CopyImage copies an image from this engine to another one, as `docker save | docker load` does: for a
// second engine that cannot pull (tests, no registry).
func (c *Client) CopyImage(ctx context.Context, ref string, to *Client) error {
	rc, err := c.api.ImageSave(ctx, []string{ref})
	if err != nil {
		return classify("save image "+ref, err)
	}
	defer rc.Close()
	resp, err := to.api.ImageLoad(ctx, rc, client.ImageLoadWithQuiet(true))
	if err != nil {
		return classify("load image "+ref+" into "+to.Host(), err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return fmt.Errorf("load image %s into %s: %w", ref, to.Host(), err)
	}
	return nil
}
