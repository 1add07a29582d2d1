// Package authz decides which client may do what, with casbin. The subject is
// the common name of the client's verified certificate (certs.SubjectFromState),
// the object is the log ("*" in policies means every log) and the action is
// ActionProduce or ActionConsume. Anything the policy does not allow is denied.
//
// # Files
//
// genacl writes two files, read back by New:
//
//	model.conf   the casbin model, the text of Model:
//	             r = sub, obj, act; p = sub, obj, act;
//	             allowed if some p has p.sub == r.sub, p.act == r.act and
//	             p.obj == r.obj or p.obj == "*"
//	policy.csv   one permission per line, '#' starts a comment:
//	             p, root, *, produce
//	             p, root, *, consume
//
// A missing, unreadable or invalid file is an error from New: nothing falls
// back to an open policy.
//
// # Concurrency
//
// Authorize may be called from any number of goroutines. Reload reads the
// files again and swaps the model and policy in force at once, whole: a file
// that does not load leaves the ones in force (the error wraps ErrRefused).
package authz
