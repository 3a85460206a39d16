package butane

import (
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
)

// UserDataLimit is EC2's user-data limit in bytes. Ignition's AWS provider
// reads user data raw (no gunzip), so this bounds the Ignition JSON itself.
const UserDataLimit = 16384

// pointerReasons says why the full config cannot be the user data: too big,
// or it carries the CA key and the spec does not allow that. None means the
// full config may be used as is.
func pointerReasons(size int, carriesKey, allowKey bool) []string {
	var why []string
	if size > UserDataLimit {
		why = append(why, fmt.Sprintf("the Ignition config is %d bytes, over EC2's %d-byte user-data limit", size, UserDataLimit))
	}
	if carriesKey && !allowKey {
		why = append(why, "the Ignition config contains the CA key, and user data is readable by any process on the instance that can reach IMDS (and by anyone allowed ec2:DescribeInstanceAttribute)")
	}
	return why
}

// sha512Hex is the digest Ignition's verification.hash expects.
func sha512Hex(b []byte) string {
	sum := sha512.Sum512(b)
	return hex.EncodeToString(sum[:])
}

// pointerConfig is user data that merges the full config from src, pinned
// by its sha512. S3 sources cannot be combined with compression, so none.
func pointerConfig(variant, version, src, hash string) buConfig {
	return buConfig{
		Variant: variant,
		Version: version,
		Ignition: &buIgnition{Config: buIgnitionConfig{Merge: []buResource{{
			Source:       src,
			Verification: &buVerification{Hash: "sha512-" + hash},
		}}}},
	}
}

// uploadNotes tells the operator where the full config goes.
func uploadNotes(name, dest string) []string {
	if u, err := url.Parse(dest); err == nil && u.Scheme == "s3" {
		return []string{
			fmt.Sprintf("upload before launching nodes: aws s3 cp %s %s (re-upload after every render: user-data.ign pins its sha512)", name, dest),
			fmt.Sprintf("%s contains the CA key: keep the bucket private (Block Public Access on) and grant s3:GetObject only to the nodes' role", name),
		}
	}
	return []string{
		fmt.Sprintf("serve %s at %s before launching nodes (re-upload after every render: user-data.ign pins its sha512)", name, dest),
		fmt.Sprintf("%s contains the CA key: let only the nodes reach %s (for example a VPC-only endpoint)", name, dest),
	}
}

// iamNote names the S3 objects Ignition fetches with the instance's role,
// or returns "" when there are none.
func iamNote(sources ...string) string {
	var arns []string
	for _, src := range sources {
		if u, err := url.Parse(src); err == nil && u.Scheme == "s3" {
			arns = append(arns, fmt.Sprintf("arn:aws:s3:::%s/%s", u.Host, strings.TrimPrefix(u.Path, "/")))
		}
	}
	if len(arns) == 0 {
		return ""
	}
	return "the instances need an IAM instance profile allowing s3:GetObject on " + strings.Join(arns, " and ")
}
