package docker

import (
	"context"

	"github.com/docker/docker/api/types/image"
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
