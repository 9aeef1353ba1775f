//go:build !nos3

package files

// s3:// buckets, for clusters. The driver brings in the AWS SDK (20
// modules, about 12 MB of binary); build with -tags nos3 to leave it out,
// and OpenStorage then refuses s3:// URLs.
import _ "gocloud.dev/blob/s3blob"
